"""LeGrad (Bousselham et al., 2024, "LeGrad: An Explainability Method for Vision Transformers via
Feature Formation Sensitivity"), written from the paper's description.

For every layer l, a score s^l is read out from that layer's output tokens with the model's own
final norm, pooling and the class's head column (the paper's "feature formation" view: how the
prediction forms at each depth; s^L is the class logit minus its bias). The signal of layer l is
the gradient of s^l w.r.t. the layer's attention probabilities A^l (heads x T x T), with negative
entries set to 0 and averaged over heads; of its rows we keep the query tokens the prediction is
read from, and of its columns the patch tokens. The layer maps are averaged over all layers,
reshaped to the patch grid and upsampled bilinearly to the image size.

Query rows: the [CLS] row for models with a [CLS] token (ViT, DINOv3 and their students; registers
are dropped with the other prefix columns). SigLIP pools with an attention head (MAP) that reads
every patch token, so the mean over all (patch) rows is used; the MAP head's own attention is not
used, so teacher and student maps are formed the same way. With ``layerwise=False`` every layer
uses the final logit instead of its own readout (a cheaper, common simplification).

The map is returned unnormalised (non-negative); the paper's min-max scaling is a per-image display
step that would shift mass and so change GridPG. No maintained package supports HF transformers 5
models and our B-cos students, hence this short implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aloe.eval.attributions.attention_maps import class_weights, trace_attention


def legrad(
    backbone, head_weight: torch.Tensor, images: torch.Tensor, classes: torch.Tensor, *, layerwise: bool = True
) -> torch.Tensor:
    """(N, H, W) LeGrad map for logit pooler_output @ head_weight[:, c] of a teacher or B-cos student."""
    prefix = backbone.num_prefix_tokens
    trace = trace_attention(backbone, images, output_hidden_states=layerwise)
    w = class_weights(head_weight, classes, trace.pooled.dtype)
    layer_maps = []
    with torch.enable_grad():
        for layer, attn in enumerate(trace.attentions):
            feature = trace.readout(trace.hidden_states[layer + 1]) if layerwise else trace.pooled
            (grad,) = torch.autograd.grad((feature * w).sum(), attn, retain_graph=True)
            per_query = grad.clamp_min(0).mean(dim=1)  # (N, T, T)
            rows = per_query[:, 0] if prefix > 0 else per_query.mean(dim=1)  # (N, T)
            layer_maps.append(rows[:, prefix:].detach())
    n = images.shape[0]
    ph, pw = images.shape[-2] // backbone.patch_size, images.shape[-1] // backbone.patch_size
    grid = torch.stack(layer_maps).mean(dim=0).reshape(n, 1, ph, pw)
    return F.interpolate(grid, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
