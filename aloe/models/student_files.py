"""A saved student's files: a Hugging Face model directory (no pickle).

``config.json`` (``StudentConfig``, ``model_type`` "aloe_bcos_student"), ``model.safetensors``,
``preprocessor_config.json`` (``BcosImageProcessor``), ``README.md`` (the model card,
``aloe.models.model_card``) and, for a SigLIP student saved with its teacher's text tower, the
``text`` subfolder (``aloe.models.text_tower``). Every file is a function of the student alone:
the same student gives the same bytes. The weights file is written with a canonical header
(``aloe.tensorfile``), since safetensors' own header order changes from process to process.

Reading names the file that is incomplete, truncated or unreadable. Building the student from
them is ``BcosStudent.from_pretrained``; this module does not import the student, so that
``BcosStudent.save_pretrained`` can use ``save_student`` without an import cycle.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file
from torch import nn

from aloe.io import write_text
from aloe.models.image_processor import BcosImageProcessor
from aloe.models.model_card import model_card
from aloe.models.text_tower import TEXT_DIR, TextTower, save_text_tower
from aloe.tensorfile import read_header, save_tensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PROCESSOR_NAME = "preprocessor_config.json"
CARD_NAME = "README.md"


def save_student(student: nn.Module, directory: str | Path, image_processor: Optional[BcosImageProcessor] = None,
                 text_tower: Optional[TextTower] = None) -> None:
    """Write a ``BcosStudent``'s files to ``directory``; a ``text`` folder left by an earlier save
    goes when there is no text tower now."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in student.state_dict().items()}
    save_tensors(directory / WEIGHTS_NAME, state, metadata={"format": "pt", "aloe": "bcos-student"})
    student.config.to_json(directory / CONFIG_NAME)
    processor = image_processor or BcosImageProcessor.for_student(student.config)
    write_text(directory / PROCESSOR_NAME, processor.to_json_string())
    if text_tower is not None:
        save_text_tower(text_tower, directory)
    elif (directory / TEXT_DIR).is_dir():
        shutil.rmtree(directory / TEXT_DIR)
    write_text(directory / CARD_NAME, model_card(student.config, image_processor=processor,
                                                 has_text_tower=text_tower is not None))


def read_image_processor(directory: str | Path, config: Any) -> BcosImageProcessor:
    """The saved processor, or the pipeline's default for ``config`` (students saved before it was written)."""
    path = Path(directory) / PROCESSOR_NAME
    if not path.is_file():
        return BcosImageProcessor.for_student(config)
    try:
        return BcosImageProcessor.from_json_file(path)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


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
