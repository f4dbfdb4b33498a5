"""Pixel deletion: remove the most-attributed blocks first and watch the class probability fall."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def deletion_fractions(max_fraction: float = 0.8, steps: int = 9) -> list[float]:
    """Evenly spaced fractions 0 ... max_fraction (default 0, 0.1, ..., 0.8)."""
    return [float(f) for f in np.linspace(0.0, max_fraction, steps)]


def block_ranking(attributions: torch.Tensor, block: int) -> torch.Tensor:
    """(N, [C,] H, W) maps -> (N, n_blocks) block indices, highest summed attribution first."""
    a = attributions.sum(dim=1) if attributions.ndim == 4 else attributions
    if a.shape[-2] % block or a.shape[-1] % block:
        raise ValueError(f"image size {tuple(a.shape[-2:])} is not a multiple of block={block}")
    sums = F.avg_pool2d(a[:, None].double(), block).flatten(1)
    return sums.argsort(dim=1, descending=True, stable=True)


def delete_blocks(
    images: torch.Tensor, order: torch.Tensor, n_delete: int, block: int, value: float = 0.0
) -> torch.Tensor:
    """Set the first ``n_delete`` blocks of ``order`` (per image) to ``value``."""
    n, _, h, w = images.shape
    keep = torch.ones(n, (h // block) * (w // block), dtype=images.dtype, device=images.device)
    keep.scatter_(1, order[:, :n_delete].to(images.device), 0.0)
    mask = F.interpolate(keep.view(n, 1, h // block, w // block), scale_factor=block, mode="nearest")
    return images * mask + value * (1 - mask)


@dataclass
class DeletionResult:
    fractions: list[float]
    curve: list[float]  # mean target-class probability at each fraction
    area: float  # trapezoidal area under the curve over the fractions


@torch.no_grad()
def deletion_curve(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    attributions: torch.Tensor,
    *,
    block: int = 16,
    fractions: Sequence[float] | None = None,
    value: float = 0.0,
) -> DeletionResult:
    """Zero the top fraction of ``block`` x ``block`` blocks; record softmax[target].

    The number of blocks removed at fraction f is round(f * n_blocks).
    """
    fractions = list(deletion_fractions() if fractions is None else fractions)
    if any(not 0.0 <= f <= 1.0 for f in fractions) or fractions != sorted(fractions):
        raise ValueError(f"deletion fractions must be increasing within [0, 1], got {fractions}")
    order = block_ranking(attributions, block)
    n_blocks = order.shape[1]
    rows = torch.arange(images.shape[0])
    curve = []
    for f in fractions:
        x = delete_blocks(images, order, int(round(f * n_blocks)), block, value)
        prob = torch.softmax(model(x).float(), dim=1)[rows, targets.long()]
        curve.append(float(prob.mean()))
    area = float(np.trapezoid(curve, fractions)) if len(fractions) > 1 else 0.0
    return DeletionResult(fractions, curve, area)
