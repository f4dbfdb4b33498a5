"""W(x)·x explanations of a B-cos student with a linear head, for GridPG and pixel deletion."""

from __future__ import annotations

import torch

from aloe.models import BcosStudent, explain


def bcos_attribution(
    student: BcosStudent, head_weight: torch.Tensor, images: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """(N, 6, H, W) contributions to the class logit pooler_output @ head_weight[:, c].

    The head bias is a constant and gets no share of the image map.
    """
    w = head_weight.detach().to(images.dtype)[:, classes.long()].T  # (N, D)
    return explain(student, images, lambda o: (o.pooler_output * w).sum(dim=1)).image
