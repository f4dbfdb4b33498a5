"""Student save / load: ``config.json`` + ``model.safetensors`` (no pickle).

The weights file is written with a canonical header (``aloe.tensorfile``): the same weights give
the same bytes. Loading names the file that is incomplete, truncated or unreadable, and the
config key that holds a bad value.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from aloe.models.student import BcosStudent
from aloe.models.student_config import StudentConfig
from aloe.tensorfile import read_header, save_tensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_student(student: BcosStudent, directory: str | Path) -> None:
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


def load_student(directory: str | Path, map_location: str | torch.device = "cpu") -> BcosStudent:
    directory = Path(directory)
    cfg_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"student checkpoint is incomplete: {p} does not exist")
    student = BcosStudent(StudentConfig.from_json(cfg_path))
    read_header(weights_path)  # a truncated or foreign file fails here, naming it
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except Exception as err:  # noqa: BLE001 - safetensors' own errors do not say which file
        raise ValueError(f"student weights {weights_path} cannot be read: {err}") from err
    check_state_dict(student.state_dict(), state, str(weights_path))
    student.load_state_dict(state, strict=True)
    return student.to(map_location)

