"""Students at resolutions other than the training one: a B = 1 student equals its bias-free
teacher run with ``interpolate_pos_encoding=True`` (ViT, SigLIP) or its native RoPE (DINOv3)."""

from __future__ import annotations

import pytest
import torch

from aloe import bcosify, explain, load_teacher

from .student_helpers import random_pixels
from .tiny_teachers import IMAGE, PATCH, make_teacher_dir

FAMILIES = ["vit", "dinov3", "dinov3_gated", "siglip"]
SIZES = [(IMAGE * 3 // 2, IMAGE * 3 // 2), (IMAGE * 3 // 2, IMAGE + PATCH), (IMAGE // 2, IMAGE * 2)]


@pytest.fixture(scope="module", params=FAMILIES)
def teacher_dir(request, tmp_path_factory):
    return make_teacher_dir(request.param, tmp_path_factory.mktemp(request.param), zero_biases=True)


@pytest.fixture
def teacher(teacher_dir):
    return load_teacher(teacher_dir)


def _teacher_at_size(teacher, x):
    """The HF teacher at any size: learned positions interpolated as transformers does."""
    extra = {} if teacher.family == "dinov3" else {"interpolate_pos_encoding": True}
    out = teacher.vision(pixel_values=teacher.preprocess(x), output_hidden_states=True, **extra)
    pooled = out.last_hidden_state[:, 0] if teacher.family == "vit" else out.pooler_output
    return out, pooled


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_b1_student_equals_teacher_at_another_resolution(teacher, size):
    student = bcosify(teacher, b=1)
    x = random_pixels(2, *size)
    ref, pooled = _teacher_at_size(teacher, x)
    out = student(x)
    n_tokens = teacher.num_prefix_tokens + (size[0] // PATCH) * (size[1] // PATCH)
    assert out.last_hidden_state.shape == ref.last_hidden_state.shape == (2, n_tokens, teacher.hidden_size)
    assert (ref.last_hidden_state - out.last_hidden_state).abs().max() <= 1e-5
    assert (pooled - out.pooler_output).abs().max() <= 1e-5
    teacher.double()
    student = bcosify(teacher, b=1)
    ref, pooled = _teacher_at_size(teacher, x.double())
    out = student(x.double(), output_hidden_states=True)
    for i, (a, b) in enumerate(zip(ref.hidden_states, out.hidden_states)):
        assert (a - b).abs().max() <= 1e-8, f"hidden state {i}"
    assert (pooled - out.pooler_output).abs().max() <= 1e-8


@pytest.mark.parametrize("size", SIZES[1:], ids=lambda s: f"{s[0]}x{s[1]}")
def test_explanations_stay_complete_at_another_resolution(teacher, size):
    student = bcosify(teacher, b=2).double()
    w = torch.randn(student.hidden_size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    e = explain(student, random_pixels(2, *size, dtype=torch.float64), lambda o: o.pooler_output @ w)
    assert e.image.shape == (2, 6, *size)
    err = (e.image.flatten(1).sum(1) + e.constant - e.target).abs()
    assert (err <= 1e-5 * e.target.abs()).all(), err


def test_sides_that_are_not_patch_multiples_are_refused(teacher):
    student = bcosify(teacher)
    with pytest.raises(ValueError, match=rf"multiples of its patch size {PATCH}, got 36x32.*BcosImageProcessor"):
        student(random_pixels(1, 36, 32))
    with pytest.raises(ValueError, match=rf"multiples of its patch size {PATCH}, got 4x32"):
        student(random_pixels(1, 4, 32))
