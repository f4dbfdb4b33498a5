"""CheferCAM (Chefer et al., ICCV 2021, "Generic Attention-model Explainability"): gradient-
weighted attention rollout for the [CLS] token of a ViT / DINOv3 teacher or a B-cos student
with a [CLS] token.

R starts as the identity; per block, R <- R + mean_heads((dA * A)^+) @ R, where dA is the
gradient of the target logit w.r.t. the block's attention probabilities (the paper's eqs. 5 and 6).
The [CLS] row of R over the patch tokens (registers dropped), bilinearly upsampled, is the map. As
the authors' ViT notebook (hila-chefer/Transformer-MM-Explainability,
``Transformer_MM_explainability_ViT.ipynb``: ``avg_heads`` "rule 5", ``apply_self_attention_rules``
"rule 6", ``R[0, 1:]``, every block); its min-max scaling after upsampling is part of the display
function there and is not applied here (hand-computed check: tests/eval/test_chefercam_rule.py).
No maintained package covers HF models in transformers 5 and our students, hence this short
implementation. SigLIP (teacher or student) has no [CLS] token and is refused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aloe.eval.attributions.attention_maps import class_weights, eager_attention, trace_attention

__all__ = ["chefercam", "eager_attention"]


def chefercam(backbone, head_weight: torch.Tensor, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N, H, W) relevance of each pixel for logit pooler_output @ head_weight[:, c]."""
    if backbone.family == "siglip" or backbone.num_prefix_tokens == 0:
        raise ValueError("CheferCAM needs a [CLS] token; SigLIP (attention-pooling head) is not supported")
    prefix = backbone.num_prefix_tokens
    trace = trace_attention(backbone, images)
    with torch.enable_grad():
        score = (trace.pooled * class_weights(head_weight, classes, trace.pooled.dtype)).sum()
        grads = torch.autograd.grad(score, trace.attentions)
    n, _, t, _ = trace.attentions[0].shape
    rel = torch.eye(t, dtype=trace.pooled.dtype, device=images.device).expand(n, t, t).clone()
    for attn, grad in zip(trace.attentions, grads):
        cam = (grad * attn).clamp_min(0).mean(dim=1).detach()
        rel = rel + cam @ rel
    ph, pw = images.shape[-2] // backbone.patch_size, images.shape[-1] // backbone.patch_size
    grid = rel[:, 0, prefix:].reshape(n, 1, ph, pw)
    return F.interpolate(grid, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
