"""Fixtures for the alignment tests: a tiny saved ViT teacher and small webdataset shards."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest
from align_helpers import make_teacher_dir, write_shards

from aloe.models import bcosify, load_teacher


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    return make_teacher_dir("vit", tmp_path_factory.mktemp("tiny_vit"))


@pytest.fixture
def pair(teacher_dir):
    """A fresh (teacher, student) pair from the real foundation API."""
    teacher = load_teacher(teacher_dir)
    return teacher, bcosify(teacher)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    return {
        "train": write_shards(root, n_shards=4, per_shard=24, seed=1),
        "heldout": write_shards(root, n_shards=1, per_shard=32, seed=2, prefix="heldout"),
    }


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the spinning
    OpenMP workers make them several times slower; restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
