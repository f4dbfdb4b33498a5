"""B-cos colour explanations: a 6-channel contribution map -> an RGBA image.

The maths of ``gradient_to_image`` in the B-cos v2 code (github.com/B-cos/B-cos-v2), written
afresh: per pixel, the 6-channel dynamic weights W(x) divided by their max |value| and clamped
at 0 give the colour W[:3] / (W[:3] + W[3:]); alpha is the L2 norm of the *raw* W(x) over the 6
channels (how strongly the pixel is weighted), zero where the pixel's contribution sum(W(x)·x)
is not positive, averaged over a ``smooth`` x ``smooth`` window and divided by its 99.5th
percentile, clipped to [0, 1]. (B-cos v2 hides only negative contributions; zero ones are
transparent here too, which changes nothing visible.)
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
    raw = weights.detach().double().cpu()
    w = (raw / (raw.abs().amax(0, keepdim=True) + 1e-12)).clamp_min(0)
    rgb = w[:3] / (w[:3] + w[3:] + 1e-12)
    contribution = contributions.detach().double().cpu().sum(0)
    alpha = raw.norm(dim=0) * (contribution > 0)  # the raw norm: the max-normalised one is ~1 everywhere
    if smooth > 1:
        alpha = F.avg_pool2d(alpha[None, None], smooth, stride=1, padding=smooth // 2, count_include_pad=False)[0, 0]
        alpha = alpha[: rgb.shape[1], : rgb.shape[2]]
    scale = torch.quantile(alpha.flatten(), alpha_percentile / 100.0)
    alpha = (alpha / (scale + 1e-12)).clamp(0, 1)
    return torch.cat([rgb, alpha[None]], 0).permute(1, 2, 0).numpy()


def smooth_for(size: int) -> int:
    """The smoothing window for an image of side ``size``: 15 px at 224, scaled, odd."""
    return max(1, round(15 * size / 224)) | 1


def save_rgba_png(rgba: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    from aloe.io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray((np.clip(rgba, 0, 1) * 255).round().astype(np.uint8), mode="RGBA").save(tmp, format="PNG")
