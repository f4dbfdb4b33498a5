"""Bias-free LayerNorm whose std is detached in explanation mode.

Centring (x - mean) is linear, so the centred variant stays dynamic-linear; the uncentred
variant (RMS-style, as in the paper's wording and the conv stem) skips it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aloe.bcos.mode import DynamicLinear


class BcosLayerNorm(DynamicLinear):
    def __init__(self, dim: int, eps: float = 1e-6, centred: bool = True):
        super().__init__()
        self.dim, self.eps, self.centred = dim, eps, centred
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"BcosLayerNorm expects last dim {self.dim}, got shape {tuple(x.shape)}")
        if self.centred and not self.explanation_mode:
            return F.layer_norm(x, (self.dim,), self.weight, None, self.eps)
        if self.centred:
            x = x - x.mean(-1, keepdim=True)
        std = (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        if self.explanation_mode:
            std = std.detach()
        return x / std * self.weight

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, centred={self.centred}"


class BcosChannelNorm2d(BcosLayerNorm):
    """The same norm over the channels of an (N, C, H, W) map (used in the conv stem)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
