"""Checkpoints: atomic layout, exact round trip of weights / state, RNG restore."""

import random

import pytest
import torch
from torch import nn

from aloe.align import checkpoint as ckpt


def test_round_trip_pruning_and_latest(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    for step in (1, 2, 3):
        path = ckpt.save_checkpoint(tmp_path, step, {"student": model, "empty": nn.Identity()},
                                    {"optimizer": opt.state_dict(), "rng": ckpt.rng_state(), "step": step}, keep=2)
    assert ckpt.latest_checkpoint(tmp_path) == path == tmp_path / "step_000000003"
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000000002", "step_000000003"]
    assert not list(tmp_path.glob(".step_*"))  # no temp folders left behind
    fresh = nn.Linear(4, 3)
    state = ckpt.load_checkpoint(path, {"student": fresh, "empty": nn.Identity()})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    opt2.load_state_dict(state["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert state["step"] == 3


def test_rng_state_restores_all_generators(tmp_path):
    state = ckpt.rng_state()
    a = (random.random(), torch.rand(3), __import__("numpy").random.rand())
    ckpt.save_checkpoint(tmp_path, 1, {}, {"rng": state})
    loaded = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), {})
    ckpt.set_rng_state(loaded["rng"])
    b = (random.random(), torch.rand(3), __import__("numpy").random.rand())
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_broken_pointer_is_a_clear_error(tmp_path):
    assert ckpt.latest_checkpoint(tmp_path) is None
    (tmp_path / "latest").write_text("step_000000009\n")
    with pytest.raises(FileNotFoundError, match="holds no state.pt"):
        ckpt.latest_checkpoint(tmp_path)
