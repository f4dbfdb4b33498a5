import math

import pytest

from aloe.lr_schedule import LrFactor, warmup_cosine


def test_warmup_then_cosine():
    f = LrFactor(total_steps=10, warmup_steps=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert f(10) == pytest.approx(0.0, abs=1e-12)


def test_warmup_constant_cosine_tail():
    f = LrFactor(total_steps=10, warmup_steps=2, kind="constant_cosine", tail_steps=4, min_factor=0.1)
    assert [f(2), f(5), f(6)] == [1.0, 1.0, 1.0]
    assert f(8) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 2 / 4)))
    assert f(10) == pytest.approx(0.1)


def test_bad_schedule_settings_named():
    with pytest.raises(ValueError, match="'schedule'"):
        LrFactor(10, kind="linear")
    with pytest.raises(ValueError, match="warmup_steps"):
        LrFactor(10, warmup_steps=11)
    with pytest.raises(ValueError, match="tail_steps"):
        LrFactor(10, warmup_steps=2, kind="constant_cosine", tail_steps=0)


def test_warmup_cosine_curve():
    f = LrFactor(total_steps=10, warmup_steps=2, kind="constant_cosine", tail_steps=4, min_factor=0.1)
    curve = [warmup_cosine(s, warmup_steps=2, decay_start=6, total_steps=10, min_factor=0.1) for s in range(12)]
    assert curve == [f(s) for s in range(12)]
    assert curve[:7] == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert curve[10:] == pytest.approx([0.1, 0.1])  # stays at the floor after the last step
    # a warm-up longer than the run (not a valid LrFactor) only ramps
    ramp = [warmup_cosine(s, warmup_steps=6, decay_start=6, total_steps=4) for s in range(4)]
    assert ramp == [1 / 6, 2 / 6, 3 / 6, 4 / 6]
