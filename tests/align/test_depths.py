"""aloe.depths: the config's depth symbols and dense-probe blocks on models of every depth the
presets use (the demo's 2 and 4 blocks, the paper's 12, 24 and 27)."""

import pytest

from aloe.depths import default_depths, dense_blocks, resolve_depths

# L -> (default = {floor(L/3), floor(2L/3), L} clamped to >= 1, dense 'quartiles')
PINNED = {
    2: ([1, 2], [0, 1]),
    4: ([1, 2, 4], [0, 1, 2, 3]),
    12: ([4, 8, 12], [2, 5, 8, 11]),
    24: ([8, 16, 24], [5, 11, 17, 23]),
    27: ([9, 18, 27], [5, 12, 19, 26]),
}


@pytest.mark.parametrize("num_layers", sorted(PINNED))
def test_default_symbols_and_quartiles_pinned(num_layers):
    default, quartiles = PINNED[num_layers]
    assert resolve_depths("default", num_layers) == default
    assert resolve_depths(None, num_layers) == default
    assert default_depths(num_layers) == default
    assert resolve_depths(["L/3", "2L/3", "L"], num_layers) == default
    assert resolve_depths(["2L/3", "L"], num_layers) == default[-2:]
    assert resolve_depths(["L"], num_layers) == [num_layers]
    assert resolve_depths(["all"], num_layers) == list(range(1, num_layers + 1))
    assert dense_blocks("quartiles", num_layers) == quartiles
    assert dense_blocks("last", num_layers) == [num_layers - 1]


def test_integers_and_symbols_mix_sorted_and_distinct():
    assert resolve_depths([12, "L/3", 4, 3], 12) == [3, 4, 12]
    assert resolve_depths([3, 7, 11], 12) == [3, 7, 11]  # the authors' public code's blocks for L = 12
    assert resolve_depths(["L/3"], 1) == [1]  # clamped to block 1


@pytest.mark.parametrize("bad", [[0], [13], [2.5], [True], [], ["L/2"], "L", "quartiles"])
def test_invalid_depths_name_the_config_key(bad):
    with pytest.raises(ValueError, match="config key 'depths'"):
        resolve_depths(bad, 12)


def test_dense_blocks_listed_are_one_based():
    assert dense_blocks([1, 12], 12) == [0, 11]
    with pytest.raises(ValueError, match="evaluation.dense.blocks"):
        dense_blocks("middle", 12)


def test_objective_resolves_symbols_against_the_models_real_block_count():
    from aloe.align.objectives import build_objective

    class Student:
        num_layers, hidden_size = 6, 8

    assert build_objective("aloe", Student(), depths=["L/3", "L"]).depths == [2, 6]
    assert build_objective("aloe", Student()).depths == [2, 4, 6]
    with pytest.raises(ValueError, match="config key 'depths'"):
        build_objective("aloe", Student(), depths=[7])
