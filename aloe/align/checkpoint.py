"""Atomic training checkpoints: ``<root>/step_XXXXXXXXX/`` + a ``latest`` pointer file.

A checkpoint folder is assembled under a temp name and renamed into place, then ``latest`` is
rewritten atomically, so a crash at any moment leaves the previous checkpoint intact and
``latest`` never names a partial folder. Model weights go to safetensors; optimiser, scheduler,
scaler, RNG states and the data position (plain tensors / dicts / numbers) go to ``state.pt``,
read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from aloe.io import make_temp_dir, share_modes, write_text

LATEST = "latest"


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.state_dict())


def save_checkpoint(
    root: str | os.PathLike, step: int, modules: dict[str, nn.Module], state: dict[str, Any], keep: int = 2
) -> Path:
    """Write modules (safetensors) and ``state`` (torch.save) for ``step``; keep the newest ``keep``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:09d}"
    if (final / "state.pt").is_file():  # this step boundary is already saved (same state): keep it
        write_text(root / LATEST, final.name + "\n")
        return final
    tmp = make_temp_dir(root, prefix=f".{final.name}.")
    try:
        for name, module in modules.items():
            if _has_state(module):
                safetensors.torch.save_model(module, str(tmp / f"{name}.safetensors"))
        torch.save(state, tmp / "state.pt")
        share_modes(tmp)  # safetensors writes 0600
        if final.exists():  # a leftover without state.pt cannot be a complete checkpoint
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text(root / LATEST, final.name + "\n")
    for old in sorted(root.glob("step_*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text().strip()
    if not (path / "state.pt").is_file():
        raise FileNotFoundError(f"checkpoint pointer {pointer} names {path}, which holds no state.pt")
    return path


def load_checkpoint(path: str | os.PathLike, modules: dict[str, nn.Module], map_location="cpu") -> dict[str, Any]:
    """Load module weights (strict) into ``modules`` and return the saved ``state``."""
    path = Path(path)
    for name, module in modules.items():
        if _has_state(module):
            file = path / f"{name}.safetensors"
            if not file.is_file():
                raise FileNotFoundError(f"checkpoint {path} lacks {file.name}")
            safetensors.torch.load_model(module, str(file), strict=True, device=str(map_location))
    return torch.load(path / "state.pt", map_location=map_location, weights_only=True)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU + CUDA) RNG states as plain lists/numbers (no tensors, so they
    also pass through ``all_gather_object`` and ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
