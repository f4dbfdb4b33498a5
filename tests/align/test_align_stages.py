import pytest

from aloe.align.stages import resolve_symbolic_depths


def test_symbolic_depths():
    assert resolve_symbolic_depths("default", 12) is None
    assert resolve_symbolic_depths(["L/3", "2L/3", "L"], 12) == [4, 8, 12]
    assert resolve_symbolic_depths(["L"], 24) == [24]
    assert resolve_symbolic_depths(["all"], 3) == [1, 2, 3]
    assert resolve_symbolic_depths([3, 7, 11], 12) == [3, 7, 11]  # the authors' indices, given explicitly
    assert resolve_symbolic_depths(["L/3", "2L/3", "L"], 2) == [1, 2]  # clamped and deduplicated


def test_symbolic_depths_reject_unknown():
    with pytest.raises(ValueError, match="config key 'depths'"):
        resolve_symbolic_depths(["L/2"], 12)
