"""CheferCAM (Chefer et al., ICCV 2021, "Generic Attention-model Explainability"): gradient-
weighted attention rollout for the [CLS] token of a HF ViT / DINOv3 teacher.

R starts as the identity; per block, R <- R + mean_heads((dA * A)^+) @ R, where dA is the
gradient of the target logit w.r.t. the block's attention probabilities. The [CLS] row of R over
the patch tokens, bilinearly upsampled, is the map. No maintained package covers HF models in
transformers 5, hence this short implementation. SigLIP has no [CLS] token and is refused.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def eager_attention(module: torch.nn.Module) -> Iterator[None]:
    """Attention probabilities are only returned by the eager implementation."""
    previous = module.config._attn_implementation
    module.set_attn_implementation("eager")
    try:
        yield
    finally:
        module.set_attn_implementation(previous)


def chefercam(teacher, head_weight: torch.Tensor, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N, H, W) relevance of each pixel for logit pooler_output @ head_weight[:, c] of a teacher."""
    if teacher.family == "siglip" or teacher.num_prefix_tokens == 0:
        raise ValueError("CheferCAM needs a [CLS] token; SigLIP (attention-pooling head) is not supported")
    vision, prefix = teacher.vision, teacher.num_prefix_tokens
    x = images.detach().requires_grad_(True)  # puts the (frozen) attention maps into the graph
    with eager_attention(vision), torch.enable_grad():
        out = vision(pixel_values=teacher.preprocess(x), output_attentions=True)
        pooled = out.last_hidden_state[:, 0] if teacher.family == "vit" else out.pooler_output
        w = head_weight.detach().to(pooled.dtype)[:, classes.long()].T
        score = (pooled * w).sum()
        grads = torch.autograd.grad(score, out.attentions)
    n, _, t, _ = out.attentions[0].shape
    rel = torch.eye(t, dtype=pooled.dtype).expand(n, t, t).clone()
    for attn, grad in zip(out.attentions, grads):
        cam = (grad * attn).clamp_min(0).mean(dim=1).detach()
        rel = rel + cam @ rel
    ph, pw = images.shape[-2] // teacher.patch_size, images.shape[-1] // teacher.patch_size
    grid = rel[:, 0, prefix:].reshape(n, 1, ph, pw)
    return F.interpolate(grid, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
