"""Transformer MLPs with B-cos projections and detachable gates."""

from __future__ import annotations

import torch
from torch import nn

from aloe.bcos.activation import DetachableActivation
from aloe.bcos.linear import BcosLinear
from aloe.bcos.mode import DynamicLinear


class Mlp(nn.Module):
    """fc1 -> activation -> fc2, as in ViT and SigLIP."""

    def __init__(self, dim: int, hidden: int, act: str | DetachableActivation, b: float = 2.0, form: str = "cosine"):
        super().__init__()
        self.fc1 = BcosLinear(dim, hidden, b=b, form=form)
        self.act = act if isinstance(act, DetachableActivation) else DetachableActivation(act)
        self.fc2 = BcosLinear(hidden, dim, b=b, form=form)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GatedMlp(DynamicLinear):
    """down(act(gate(x)) * up(x)) (DINOv3's SwiGLU variant); act(gate(x)) is the detachable gate."""

    def __init__(self, dim: int, hidden: int, act: str, b: float = 2.0, form: str = "cosine"):
        super().__init__()
        self.gate_proj = BcosLinear(dim, hidden, b=b, form=form)
        self.up_proj = BcosLinear(dim, hidden, b=b, form=form)
        self.down_proj = BcosLinear(hidden, dim, b=b, form=form)
        self.act = DetachableActivation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.act(self.gate_proj(x))
        if self.explanation_mode:
            gate = gate.detach()
        return self.down_proj(gate * self.up_proj(x))
