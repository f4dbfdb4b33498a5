"""LeGrad (Bousselham et al., ICCV 2025, "LeGrad: An Explainability Method for Vision Transformers via
Feature Formation Sensitivity") with the maths of its authors' package ``legrad-torch`` 1.1
(github.com/WalBouss/LeGrad, ``legrad/wrapper.py``: ``LeWrapper.compute_legrad_clip`` for ViTs with a
[CLS] token, ``compute_legrad_siglip`` for SigLIP), re-stated for HF teachers and B-cos students. The
package wraps open_clip models and scores a text embedding t; here the probe's class column w_c takes
t's place (the parity test, tests/eval/test_legrad_parity.py, runs both on one network).

Explained layers (``layer_index``, legrad-torch's argument): blocks s, ..., L - 1 with s = layer_index
if it is >= 0, else L + layer_index; the default -2 explains the last two blocks, 0 every block (the
paper's abstract: "We aggregate the signal over all layers"). Block l's output tokens are read out
into a feature f^l, L2-normalised (``normalize``: CLIP/SigLIP score cosine similarities), and the
score s^l = f^l · w_c is differentiated:

* [CLS] models (ViT, DINOv3, their students). f^l = final_norm(mean over ALL tokens of block l)
  (legrad-torch: ``ln_post(feat.mean(0)) @ proj``; [CLS] and registers included in the mean). The
  signal is ds^l/dA^l for block l's self-attention A^l (N, heads, T, T): ReLU, mean over heads, mean
  over all query rows ([CLS], registers, patches; ``queries="cls"``: the [CLS] row only, or all rows
  on a backbone without [CLS]), patch columns.
* SigLIP (MAP head; teacher and student). f^l = head(block l's tokens), without the post-LayerNorm
  (legrad-torch applies timm's ``attn_pool`` to the raw block output). The signal is ds^l/dP^l for the
  head's own attention probabilities P^l (N, heads, 1, T) in that application: ReLU, mean over heads,
  the probe's row. ``pooler_attention=False`` uses the blocks' self-attention as for [CLS] models.

The layer maps are averaged (legrad-torch sums them; the same after min-max), reshaped to the patch
grid, upsampled bilinearly (align_corners=False) to the image size and min-max scaled per image
(``minmax``), in legrad-torch's order: [CLS] models upsample then scale, SigLIP scales then upsamples.
A constant map scales to 0 (legrad-torch: NaN).

Empty-prompt correction (``correction``; legrad-torch's SigLIP ``apply_correction``, on by default
there, threshold 0.8): a second map is formed for a class-agnostic direction e in the same way, and the
target's (patch-grid) map is set to 0 wherever e's min-max-scaled map exceeds ``correction_threshold``
(a mask, not a subtraction). legrad-torch takes e = the text embedding of "a photo of a". A linear
probe has no prompt and so no empty prompt of its own: the default here is None (off) for every
backbone, so that teacher and student maps are formed alike. ``correction="empty-prompt"`` takes e
from a SigLIP teacher's own text tower ("a photo of a", as legrad-torch; needs the SiglipModel and its
tokenizer); a (D,) tensor sets e directly (e.g. a zero-shot template embedding).

Other switches: ``readout="model"`` reads every layer with the backbone's own readout (final norm,
then the [CLS] token or the MAP head), so that s^L is the probe's logit minus its bias;
``normalize=False`` differentiates the unnormalised f^l · w_c; ``minmax=False`` returns the unscaled,
non-negative mean of the layer maps (min-max shifts mass, which changes GridPG shares);
``layerwise=False`` scores every explained layer with the last layer's readout (one score, its gradient
w.r.t. each layer's attention: a cheaper simplification that legrad-torch does not offer).
``EARLIER_DEFAULTS`` are the options that reproduce this module before it followed legrad-torch.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from aloe.eval.attributions.attention_maps import AttentionTrace, class_weights, trace_attention

READOUTS = ("legrad-torch", "model")
QUERIES = ("all", "cls")
EARLIER_DEFAULTS = dict(layer_index=0, queries="cls", readout="model", normalize=False, pooler_attention=False,
                        minmax=False)


def legrad(
    backbone,
    head_weight: torch.Tensor,
    images: torch.Tensor,
    classes: torch.Tensor,
    *,
    layer_index: int = -2,
    queries: str = "all",
    readout: str = "legrad-torch",
    normalize: bool = True,
    pooler_attention: bool = True,
    layerwise: bool = True,
    correction: Union[None, str, torch.Tensor] = None,
    correction_threshold: float = 0.8,
    minmax: bool = True,
) -> torch.Tensor:
    """(N, H, W) LeGrad map of class ``classes[i]`` (column of ``head_weight`` (D, C)) for each image."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if queries not in QUERIES:
        raise ValueError(f"queries must be one of {QUERIES}, got {queries!r}")
    trace = trace_attention(backbone, images, output_hidden_states=True)
    depth, prefix = len(trace.attentions), backbone.num_prefix_tokens
    start = layer_index if layer_index >= 0 else depth + layer_index
    if not 0 <= start < depth:
        raise ValueError(f"layer_index {layer_index} selects no block of a {depth}-block backbone")
    pooler = pooler_attention and trace.pool is not None
    first_row = pooler or (queries == "cls" and prefix > 0)  # the probe's / the [CLS] row, else all rows
    dtype = trace.pooled.dtype
    targets = [class_weights(head_weight, classes, dtype)]
    if correction is not None:
        targets.append(_empty_direction(backbone, correction, dtype, images.device).expand_as(targets[0]))
    grids: list = [0.0] * len(targets)
    with torch.enable_grad():
        for layer in range(start, depth):
            feature, attn = _readout(trace, trace.hidden_states[(layer if layerwise else depth - 1) + 1], readout,
                                     pooler)
            attn = trace.attentions[layer] if attn is None else attn
            feature = F.normalize(feature, dim=-1) if normalize else feature
            for i, w in enumerate(targets):
                (grad,) = torch.autograd.grad((feature * w).sum(), attn, retain_graph=True)
                per_query = grad.clamp_min(0).mean(dim=1)  # ReLU, heads averaged: (N, queries, T)
                rows = per_query[:, 0] if first_row else per_query.mean(dim=1)
                grids[i] = grids[i] + rows[:, prefix:].detach() / (depth - start)
    n = images.shape[0]
    ph, pw = images.shape[-2] // backbone.patch_size, images.shape[-1] // backbone.patch_size
    grid, *empty = (g.reshape(n, 1, ph, pw) for g in grids)
    if empty:
        grid = grid.masked_fill(_min_max(empty[0]) > correction_threshold, 0.0)
    if minmax and pooler:  # legrad-torch's SigLIP order: scale on the patch grid, then upsample
        grid = _min_max(grid)
    maps = F.interpolate(grid, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _min_max(maps) if minmax and not pooler else maps


def _readout(trace: AttentionTrace, tokens: torch.Tensor, readout: str,
             pooler: bool) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(feature f^l (N, D), the MAP head's attention probabilities when they carry the signal, else None)."""
    if trace.head is None:  # [CLS] models
        return (trace.norm(tokens.mean(dim=1)) if readout == "legrad-torch" else trace.readout(tokens)), None
    tokens = tokens if readout == "legrad-torch" else trace.norm(tokens)
    return trace.pool(tokens) if pooler else (trace.head(tokens), None)


def _empty_direction(backbone, correction: Union[str, torch.Tensor], dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """The unit (D,) direction of the empty-prompt correction."""
    if isinstance(correction, str):
        if correction != "empty-prompt":
            raise ValueError(f"correction must be None, 'empty-prompt' or a (D,) tensor, got {correction!r}")
        model, tokenizer = getattr(backbone, "hf_model", None), getattr(backbone, "tokenizer", None)
        if tokenizer is None or not hasattr(model, "get_text_features"):
            raise ValueError("correction='empty-prompt' needs a SigLIP teacher with its text tower and tokenizer")
        from aloe.eval.zeroshot import siglip_text_embeddings

        correction = siglip_text_embeddings(model, tokenizer, ["a"], ["a photo of {}"], device=device)[0, 0]
    e = torch.as_tensor(correction).detach().to(device=device, dtype=dtype).flatten()
    if e.numel() != backbone.hidden_size:
        raise ValueError(f"correction direction has {e.numel()} entries, features {backbone.hidden_size}")
    return F.normalize(e, dim=0)


def _min_max(x: torch.Tensor) -> torch.Tensor:
    """Per map over the last two dims: (x - min) / (max - min); a constant map becomes 0."""
    lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)
