"""The evaluated classifier: a frozen backbone followed by its linear-probe head, and that head's file."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from aloe.bcos import BcosLinear
from aloe.models.heads import load_head as read_head

HEADS = ("linear", "bcos")


class ProbedClassifier(nn.Module):
    """images (raw pixels in [0, 1]) -> logits of the probe head on ``pooler_output``.

    ``head="linear"``: pooler_output @ weight + bias. ``head="bcos"`` (the ``aloe_code`` probe's
    head on students): a B-cos linear (B = 2, no bias; ``weight`` transposed) on pooler_output; in
    explanation mode its dynamic factor is detached like every B-cos layer's, so class c's logit is
    |cos(pooled, w_c)| (one non-negative number per image) times pooled @ w_c, and attributions
    taken through ``weight`` (``aloe.eval.attributions``) are the logit's up to that factor.
    The head must come from a probe on ``pooler_output``: layout (1 block, no avgpool) of a
    feature cache (``aloe.eval.features.pooled_feature``), which the head files hold.
    """

    def __init__(self, backbone: Any, weight: torch.Tensor, bias: torch.Tensor, head: str = "linear"):
        super().__init__()
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ValueError(
                f"head weight must be (D, C) and bias (C,), got {tuple(weight.shape)}, {tuple(bias.shape)}"
            )
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        hidden = getattr(backbone, "hidden_size", weight.shape[0])
        if weight.shape[0] != hidden:
            raise ValueError(f"head input dim {weight.shape[0]} != backbone hidden_size {hidden}")
        self.backbone, self.head = backbone, head
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone())
        self.bcos_head = None
        if head == "bcos":
            self.bcos_head = BcosLinear(weight.shape[0], weight.shape[1], b=2.0)
            self.bcos_head.weight.data.copy_(self.weight.T)
            self.bcos_head.weight.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.backbone(images).pooler_output.float()
        if self.bcos_head is not None:
            return self.bcos_head(pooled)
        return pooled @ self.weight + self.bias


def load_head(path: str | os.PathLike, backbone_path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A saved linear-probe head (``run_linear_probe``'s ``head_out``): (weight (D, C), bias (C,),
    kind "linear" | "bcos", metadata ``head``; files without it are linear), the arguments of
    ``ProbedClassifier``; refuses a head trained on another backbone's features (its
    ``backbone_checksum`` metadata). ``aloe.models.heads.load_head`` gives the head as an object."""
    head = read_head(path, backbone=backbone_path)
    return head.weight, head.bias, head.kind
