"""A fresh B-cos convolutional stem (the paper's replacement for the linear patch projection).

log2(patch) stride-2 3x3 B-cos convs, channels doubling up to the hidden size, each followed by
a bias-free uncentred channel norm, then a 1x1 B-cos conv. No activations: the B-cos
non-linearity suffices, and everything stays dynamic-linear.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aloe.bcos.linear import BcosConv2d
from aloe.bcos.norm import BcosChannelNorm2d


class BcosConvStem(nn.Module):
    def __init__(self, hidden_size: int, patch_size: int, in_channels: int = 6, b: float = 2.0, eps: float = 1e-6,
                 form: str = "cosine"):
        super().__init__()
        n = int(round(math.log2(patch_size)))
        if 2**n != patch_size or n < 1:
            raise ValueError(f"the conv stem needs a power-of-two patch size, got {patch_size}")
        widths = [max(hidden_size // 2 ** (n - i), 8) for i in range(1, n + 1)]
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in widths:
            layers += [BcosConv2d(c_in, c_out, 3, stride=2, padding=1, b=b, form=form),
                       BcosChannelNorm2d(c_out, eps=eps, centred=False)]
            c_in = c_out
        layers.append(BcosConv2d(c_in, hidden_size, 1, b=b, form=form))
        self.layers = nn.Sequential(*layers)

    def forward(self, x6: torch.Tensor) -> torch.Tensor:
        return self.layers(x6)
