"""The 6-channel input [x, 1 - x] and the exact first-layer equivalence.

A teacher computes ``W (x - m) / s`` on raw pixels x in [0, 1]. Because x + (1 - x) = 1, the
mean can be written as ``m = m x + m (1 - x)``, so the same value is a bias-free linear map of
[x, 1 - x]:  ``W (x - m) / s = (W (1 - m) / s) x + (-W m / s) (1 - x)``. We fold that map into
the first layer's 6-channel weights. The B-cos cosine is then taken against the raw 6-channel
patch, whose norm never vanishes. (B-cosification instead keeps [W/2, -W/2] behind a fixed
6-channel normalisation with mean (m, 1 - m); both equal the teacher at B = 1.)
"""

from __future__ import annotations

from typing import Sequence

import torch


def to_six_channel(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 6, H, W) = [x, 1 - x]."""
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected RGB pixels of shape (N, 3, H, W), got {tuple(pixels.shape)}")
    return torch.cat([pixels, 1.0 - pixels], dim=1)


def fold_first_layer(weight: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Teacher patch weights (D, 3, p, p) acting on normalised pixels -> (D, 6, p, p) acting on [x, 1 - x]."""
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected a 3-channel first-layer weight (D, 3, p, p), got {tuple(weight.shape)}")
    m = torch.as_tensor(mean, dtype=weight.dtype, device=weight.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=weight.dtype, device=weight.device).view(1, 3, 1, 1)
    return torch.cat([weight * (1 - m) / s, -weight * m / s], dim=1)
