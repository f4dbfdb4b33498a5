"""A saved student's files: ``config.json`` + ``model.safetensors`` (no pickle).

The weights file is written with a canonical header (``aloe.tensorfile``): the same weights give
the same bytes. Reading names the file that is incomplete, truncated or unreadable. Building the
student from them is ``aloe.models.student.load_student``; this module does not import the
student, so that ``BcosStudent.save_pretrained`` can use ``save_student`` without an import cycle.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from aloe.tensorfile import read_header, save_tensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_student(student: nn.Module, directory: str | Path) -> None:
    """Write a ``BcosStudent``'s weights and its ``config`` (a ``StudentConfig``) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in student.state_dict().items()}
    save_tensors(directory / WEIGHTS_NAME, state, metadata={"format": "pt", "aloe": "bcos-student"})
    student.config.to_json(directory / CONFIG_NAME)


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str) -> None:
    """Every tensor present with the right shape; errors name the tensor."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        raise ValueError(f"{source}: missing tensors {missing}")
    if unexpected:
        raise ValueError(f"{source}: unexpected tensors {unexpected}")
    for name, ref in expected.items():
        if tuple(found[name].shape) != tuple(ref.shape):
            raise ValueError(f"{source}: tensor {name!r} has shape {tuple(found[name].shape)}, "
                             f"expected {tuple(ref.shape)}")


def student_file_paths(directory: str | Path) -> tuple[Path, Path]:
    """(config file, weights file) of the student saved in ``directory``; both must exist."""
    directory = Path(directory)
    cfg_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"student checkpoint is incomplete: {p} does not exist")
    return cfg_path, weights_path


def read_student_weights(weights_path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    read_header(weights_path)  # a truncated or foreign file fails here, naming it
    try:
        return load_file(str(weights_path), device=str(map_location))
    except Exception as err:
        raise ValueError(f"student weights {weights_path} cannot be read: {err}") from err

