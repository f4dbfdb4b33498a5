"""Outputs a project group can read: atomic writes (aloe.io) and training checkpoints get the modes of
a plain open / mkdir under the process umask, not tempfile's 0600 / 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import safetensors.torch
import torch

from aloe.align.checkpoint import latest_checkpoint, save_checkpoint
from aloe.io import atomic_dir, atomic_path, process_umask, write_json


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_process_umask_reads_without_changing(umask):
    assert process_umask() == umask
    assert process_umask() == umask  # still the same: reading did not reset it


def test_atomic_writes_honour_the_umask(tmp_path, umask):
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    write_json(tmp_path / "a" / "record.json", {"x": 1})
    with atomic_path(tmp_path / "weights.bin") as tmp:
        tmp.write_bytes(b"\0" * 8)
    with atomic_path(tmp_path / "replaced.npy", suffix=".npy") as tmp:  # a writer that recreates the file
        tmp.unlink()
        tmp.write_bytes(b"npy")
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "inner.txt").write_text("x")
        write_json(tmp / "meta.json", {})
        (tmp / "sub").mkdir()
        safetensors.torch.save_file({"w": torch.zeros(2)}, str(tmp / "sub" / "w.safetensors"))  # 0600 itself
        (tmp / "run.sh").write_text("#!/bin/sh\n")
        (tmp / "run.sh").chmod(0o700)
    assert mode(tmp_path / "a" / "record.json") == file_mode
    assert mode(tmp_path / "weights.bin") == file_mode
    assert mode(tmp_path / "replaced.npy") == file_mode
    assert mode(tmp_path / "folder") == dir_mode
    assert mode(tmp_path / "folder" / "inner.txt") == file_mode
    assert mode(tmp_path / "folder" / "meta.json") == file_mode
    assert mode(tmp_path / "folder" / "sub") == dir_mode
    assert mode(tmp_path / "folder" / "sub" / "w.safetensors") == file_mode
    assert mode(tmp_path / "folder" / "run.sh") == dir_mode  # executable stays executable
    assert mode(tmp_path / "a") == dir_mode
    assert sorted(p.name for p in tmp_path.rglob("*") if ".tmp" in p.name) == []  # no temp left behind
    if umask == 0o022:
        assert (file_mode, dir_mode) == (0o644, 0o755)


def test_checkpoint_folders_honour_the_umask(tmp_path, umask):
    model = torch.nn.Linear(2, 2)
    path = save_checkpoint(tmp_path / "ckpt", 3, {"model": model}, {"step": 3})
    assert latest_checkpoint(tmp_path / "ckpt") == path
    assert mode(path) == 0o777 & ~umask
    for name in ("model.safetensors", "state.pt"):
        assert mode(path / name) == 0o666 & ~umask, name
    assert mode(tmp_path / "ckpt" / "latest") == 0o666 & ~umask
