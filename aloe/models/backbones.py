"""Evaluated backbones by path: load one (a teacher or a saved B-cos student) and checksum its weights.

``backbone_kind`` "teacher" is a HF checkpoint (``load_teacher``: a folder or a hub id), "student"
a saved B-cos student (``load_student``), whether B-cosified or ALOE-aligned.
"""

from __future__ import annotations

import os

import torch

from aloe.models.checksums import checkpoint_checksum
from aloe.models.student import load_student
from aloe.models.teacher import load_teacher

BACKBONE_KINDS = ("teacher", "student")
__all__ = ["BACKBONE_KINDS", "checkpoint_checksum", "load_backbone"]


def load_backbone(path: str | os.PathLike, kind: str) -> torch.nn.Module:
    if kind == "teacher":
        return load_teacher(str(path))
    if kind == "student":
        return load_student(path).eval()
    raise ValueError(f"backbone_kind must be one of {BACKBONE_KINDS}, got {kind!r}")
