"""Evaluated backbones by path: load one (a teacher or a saved B-cos student) and checksum its weights.

``backbone_kind`` "teacher" is a HF checkpoint (``load_teacher``: a folder or a hub id), "student"
a saved B-cos student (``load_student``), whether B-cosified or ALOE-aligned.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers.utils import cached_file

from aloe.models.student import load_student
from aloe.models.teacher import load_teacher
from aloe.tensorfile import tensors_checksum

BACKBONE_KINDS = ("teacher", "student")


def load_backbone(path: str | os.PathLike, kind: str) -> torch.nn.Module:
    if kind == "teacher":
        return load_teacher(str(path))
    if kind == "student":
        return load_student(path).eval()
    raise ValueError(f"backbone_kind must be one of {BACKBONE_KINDS}, got {kind!r}")


def checkpoint_checksum(path: str | os.PathLike) -> str:
    """sha256 over the tensors of a checkpoint's weight files (model.safetensors, or every shard),
    by name, dtype, shape and data (``aloe.tensorfile.tensors_checksum``): not over file bytes,
    which change with the header's key order and metadata while the weights do not.

    The files, not the loaded module, are hashed: a loaded HF model can hold freshly initialised
    tensors the checkpoint does not contain (e.g. an unused ViT pooler), which differ per load.
    """
    directory = Path(path)
    if not directory.is_dir():
        single = cached_file(str(path), "model.safetensors", _raise_exceptions_for_missing_entries=False)
        if single is None:
            raise FileNotFoundError(f"no model.safetensors found for backbone {path!r}")
        directory = Path(single).parent
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"backbone checkpoint {directory} has no .safetensors weight files")
    return tensors_checksum(files)
