"""Helpers for the Hugging Face-native student tests: a SigLIP teacher with a tokenizer, head files."""

from __future__ import annotations

from pathlib import Path

import torch

from aloe.models.demo_tokenizer import build_word_tokenizer
from aloe.models.heads import head_metadata
from aloe.tensorfile import save_tensors, state_checksum

from .tiny_teachers import make_teacher_dir

PROMPTS = ["a photo of a red star.", "a photo of a blue circle.", "a green square"]


def make_siglip_teacher_dir(directory: Path, seed: int = 0) -> Path:
    """A tiny SigLIP teacher whose text tower takes zero-shot's 64 tokens, with its word tokenizer."""
    make_teacher_dir("siglip", directory, seed=seed, text_positions=64)
    build_word_tokenizer(PROMPTS, max_length=64).save_pretrained(directory)
    return directory


def random_pixels(n: int, height: int, width: int, dtype=torch.float32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, height, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def write_head(path: Path, student, classes: int = 5, kind: str = "linear", seed: int = 4,
               names: list[str] | None = None, checksum: str | None = None) -> Path:
    """A head file as the linear-probe stage writes it, trained (here: drawn) on ``student``'s weights."""
    g = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(student.hidden_size, classes, generator=g), torch.randn(classes, generator=g)
    if kind == "bcos":
        bias = torch.zeros(classes)
    meta = head_metadata(checksum or state_checksum(student.state_dict()), "shapes", kind, names)
    save_tensors(path, {"weight": weight, "bias": bias}, metadata=meta)
    return path
