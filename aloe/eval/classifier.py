"""The evaluated classifier: a frozen backbone followed by its linear-probe head, and that head's file."""

from __future__ import annotations

import os
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from aloe.models.backbones import checkpoint_checksum


class ProbedClassifier(nn.Module):
    """images (raw pixels in [0, 1]) -> logits = pooler_output @ weight + bias.

    The head must come from a probe on the plain global feature (feature_spec last_n=1,
    avgpool=False), which is what ``pooler_output`` is.
    """

    def __init__(self, backbone: Any, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ValueError(
                f"head weight must be (D, C) and bias (C,), got {tuple(weight.shape)}, {tuple(bias.shape)}"
            )
        hidden = getattr(backbone, "hidden_size", weight.shape[0])
        if weight.shape[0] != hidden:
            raise ValueError(f"head input dim {weight.shape[0]} != backbone hidden_size {hidden}")
        self.backbone = backbone
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images).pooler_output.float() @ self.weight + self.bias


def load_head(path: str | os.PathLike, backbone_path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """A saved linear-probe head (``run_linear_probe``'s ``head_out``): (weight (D, C), bias (C,));
    refuses a head trained on another backbone's features (its ``backbone_checksum`` metadata)."""
    with safe_open(str(path), framework="pt") as f:
        meta, weight, bias = f.metadata() or {}, f.get_tensor("weight"), f.get_tensor("bias")
    if meta.get("backbone_checksum") != checkpoint_checksum(backbone_path):
        raise ValueError(f"head {path} was trained on features of another backbone (checksum mismatch)")
    return weight, bias
