"""B-cos colour explanations: a 6-channel contribution map -> an RGBA image.

Follows the idea of ``gradient_to_image`` in the B-cos v2 code (github.com/B-cos/B-cos-v2): per
pixel, normalise the 6-channel dynamic weights by their max |value|, colour = W[:3] / (W[:3] +
W[3:]), alpha = the L2 norm of the contribution (zero where it is negative), smoothed and scaled
by its 99.5th percentile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def explanation_to_rgba(weights: torch.Tensor, contributions: torch.Tensor, smooth: int = 15,
                        alpha_percentile: float = 99.5) -> np.ndarray:
    """One image: ``weights`` W(x) and ``contributions`` W(x)·x, both (6, H, W) -> (H, W, 4) floats in [0, 1]."""
    if weights.ndim != 3 or weights.shape[0] != 6 or contributions.shape != weights.shape:
        raise ValueError(f"expected two (6, H, W) maps, got {tuple(weights.shape)} and {tuple(contributions.shape)}")
    w = weights.detach().double().cpu()
    w = w / (w.abs().amax(0, keepdim=True) + 1e-12)
    w = w.clamp_min(0)
    rgb = w[:3] / (w[:3] + w[3:] + 1e-12)
    contribution = contributions.detach().double().cpu().sum(0)
    alpha = w.norm(dim=0) * (contribution > 0)
    if smooth > 1:
        alpha = F.avg_pool2d(alpha[None, None], smooth, stride=1, padding=smooth // 2, count_include_pad=False)[0, 0]
        alpha = alpha[: rgb.shape[1], : rgb.shape[2]]
    scale = torch.quantile(alpha.flatten(), alpha_percentile / 100.0)
    alpha = (alpha / (scale + 1e-12)).clamp(0, 1)
    return torch.cat([rgb, alpha[None]], 0).permute(1, 2, 0).numpy()


def save_rgba_png(rgba: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    from aloe.io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray((np.clip(rgba, 0, 1) * 255).round().astype(np.uint8), mode="RGBA").save(tmp, format="PNG")
