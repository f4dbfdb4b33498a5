"""Fixtures for the evaluation tests: tiny random teachers saved with save_pretrained and loaded
through the foundation API, a B-cos student of one, and a small synthetic world (aloe.data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eval_helpers import save_tiny_teacher

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

@pytest.fixture(scope="session")
def teacher_factory(tmp_path_factory):
    from aloe import load_teacher

    def make(family: str = "dinov3", seed: int = 0):
        d = tmp_path_factory.mktemp(f"{family}{seed}")
        return load_teacher(str(save_tiny_teacher(d, family, seed)))

    return make


@pytest.fixture(scope="session")
def tiny_teacher(teacher_factory):
    """A tiny DINOv3 (CLS + 2 registers) teacher: exercises prefix-token handling."""
    return teacher_factory("dinov3", 0)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    from aloe.data.synthetic_world import make_synthetic_world

    root = tmp_path_factory.mktemp("world")
    make_synthetic_world(root, seed=0, image_size=32, num_classes=4, caption_images=4, train_per_class=12,
                         test_per_class=6, digits_train=20, digits_test=10, depth_train=8, depth_test=4,
                         broken_per_kind=0, samples_per_shard=50)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread hand-offs cost more than they save, badly so on a loaded 2-core box."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
