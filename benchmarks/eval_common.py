"""Shared helpers for the evaluation benchmarks: synthetic 'cached' features written and read
through the real feature cache (aloe.eval.features)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from aloe.eval.features import feature_spec, load_features, make_provenance, save_features


def synthetic_features(
    n: int, dim: int, classes: int, spread: float, seed: int, anisotropic: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian class clusters plus isotropic noise (fp16). ``anisotropic``: per-dimension
    log-normal scales, four dimensions 30x larger and random offsets, as in real ViT features."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + spread * torch.randn(n, dim, generator=g)
    if anisotropic:
        scale = torch.exp(torch.randn(dim, generator=g))
        scale[:4] *= 30
        x = x * scale + 2 * scale * torch.randn(dim, generator=g)
    return x.half(), y


def cached_pair(
    workdir: Path, n_train: int, n_test: int, dim: int, classes: int, spread: float, seed: int = 0,
    anisotropic: bool = False,
):
    """Write train/test synthetic features to the cache format, read them back, return tensors."""
    x, y = synthetic_features(n_train + n_test, dim, classes, spread, seed, anisotropic)
    out = []
    for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        prov = make_provenance(backbone_checksum="synthetic", dataset="bench", split=split, preprocessing={},
                               spec=feature_spec())
        path = workdir / f"{split}.safetensors"
        save_features(path, {"global": x[sl].contiguous(), "labels": y[sl].contiguous()}, prov)
        f = load_features(path, {"dataset": "bench", "split": split})
        out += [f["global"], f["labels"]]
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
