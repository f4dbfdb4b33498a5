"""CP-LRP and AttnLRP for the HF teachers (ViT, DINOv3, SigLIP): pixel relevance of the class logit.

lxt (the AttnLRP authors' library) does not import with transformers 5 and supports none of these
families, so the forward pass is written out here, per family, over the HF modules' own weights
(attribute paths of ViTModel, DINOv3ViTModel and SiglipVisionModel; nothing is patched), with every
layer going through a rule of ``lrp_rules``. Relevance = input x gradient of the explained score
pooled_output @ w_c (the head bias is a constant and gets no share, as for the other methods).

The input is the model's input, the normalised pixels (``Teacher.preprocess``); their relevance is
returned as (N, 3, H, W) maps. The [CLS] token, the registers, the position embeddings and SigLIP's
probe are constant inputs; their relevance is reported by ``lrp_relevance`` (``constants``). On a
bias-free model CP-LRP is conservative: pixels + constants sum to the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn
from transformers.models.dinov3_vit.modeling_dinov3_vit import apply_rotary_pos_emb

from aloe.eval.attributions.attention_maps import class_weights
from aloe.eval.attributions.lrp_rules import LRPRules
from aloe.models import Teacher

Rope = Optional[Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class Relevance:
    pixels: torch.Tensor  # (N, 3, H, W) relevance of the normalised pixels
    constants: dict[str, torch.Tensor]  # (N,) summed relevance of each constant input (cls, registers, ...)
    score: torch.Tensor  # (N,) the explained score pooled_output @ w_c, from this forward pass


@dataclass
class _Block:
    """One pre-norm transformer block of an HF teacher, by its modules."""

    norm1: nn.LayerNorm
    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    o: nn.Linear
    heads: int
    scale: float
    norm2: nn.LayerNorm
    fc_in: nn.Linear
    act: Callable[[torch.Tensor], torch.Tensor]
    fc_out: nn.Linear
    gate: Optional[nn.Linear] = None  # gated MLP: fc_out(act(gate(x)) * fc_in(x))
    scale1: Optional[torch.Tensor] = None  # LayerScale of the attention / MLP branch
    scale2: Optional[torch.Tensor] = None


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _block(rules: LRPRules, h: torch.Tensor, b: _Block, rope: Rope = None) -> torch.Tensor:
    x = rules.layer_norm(h, b.norm1)
    q, k, v = (_split(rules.linear(x, m), b.heads) for m in (b.q, b.k, b.v))
    if rope is not None:  # linear in q and k (constant cos / sin)
        q, k = rope(q, k)
    att = rules.attention(q, k, v, b.scale).transpose(1, 2).reshape(h.shape)
    att = rules.linear(att, b.o)
    h = h + (att if b.scale1 is None else att * b.scale1)
    x = rules.layer_norm(h, b.norm2)
    if b.gate is None:
        m = rules.activation(b.act, rules.linear(x, b.fc_in))
    else:
        m = rules.gated(b.act, rules.linear(x, b.gate), rules.linear(x, b.fc_in))
    m = rules.linear(m, b.fc_out)
    return h + (m if b.scale2 is None else m * b.scale2)


def _constant(param: torch.Tensor, n: int) -> torch.Tensor:
    """A per-image copy of a learnt constant input (1, T, D) -> (n, T, D), a leaf for its relevance."""
    return param.detach().expand(n, -1, -1).clone().requires_grad_(True)


def _patches(rules: LRPRules, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return rules.linear(x, conv).flatten(2).transpose(1, 2)


def _check_size(x: torch.Tensor, image_size: int, family: str) -> None:
    if tuple(x.shape[-2:]) != (image_size, image_size):
        raise ValueError(f"LRP on {family} needs {image_size} px images (fixed position embeddings), "
                         f"got {tuple(x.shape[-2:])}")


def _vit(rules: LRPRules, v: nn.Module, x: torch.Tensor):
    """transformers ViTModel: [CLS] + patches + position embeddings, post-norm [CLS] pooled."""
    _check_size(x, int(v.config.image_size), "vit")
    e, n = v.embeddings, x.shape[0]
    leaves = {"cls": _constant(e.cls_token, n), "position": _constant(e.position_embeddings, n)}
    h = torch.cat([leaves["cls"], _patches(rules, e.patch_embeddings.projection, x)], dim=1) + leaves["position"]
    for layer in v.layers:
        a, mlp = layer.attention, layer.mlp
        blk = _Block(layer.layernorm_before, a.q_proj, a.k_proj, a.v_proj, a.o_proj, a.num_attention_heads,
                     a.scaling, layer.layernorm_after, mlp.fc1, mlp.activation_fn, mlp.fc2)
        h = _block(rules, h, blk)
    return rules.layer_norm(h, v.layernorm)[:, 0], leaves


def _dinov3(rules: LRPRules, v: nn.Module, x: torch.Tensor):
    """transformers DINOv3ViTModel: [CLS] + registers + patches, RoPE on the patch tokens' q and k,
    LayerScale, optional gated MLP (config.use_gated_mlp), post-norm [CLS] pooled."""
    e, n = v.embeddings, x.shape[0]
    leaves = {"cls": _constant(e.cls_token, n)}
    tokens = [leaves["cls"]]
    if v.config.num_register_tokens:
        leaves["registers"] = _constant(e.register_tokens, n)
        tokens.append(leaves["registers"])
    h = torch.cat(tokens + [_patches(rules, e.patch_embeddings, x)], dim=1)
    cos, sin = v.rope_embeddings(x)
    rope = lambda q, k: apply_rotary_pos_emb(q, k, cos, sin)  # noqa: E731
    gated = bool(v.config.use_gated_mlp)
    for layer in v.model.layer:
        a, mlp = layer.attention, layer.mlp
        blk = _Block(layer.norm1, a.q_proj, a.k_proj, a.v_proj, a.o_proj, a.num_heads, a.scaling, layer.norm2,
                     mlp.up_proj, mlp.act_fn, mlp.down_proj, gate=mlp.gate_proj if gated else None,
                     scale1=layer.layer_scale1.lambda1, scale2=layer.layer_scale2.lambda1)
        h = _block(rules, h, blk, rope)
    return rules.layer_norm(h, v.norm)[:, 0], leaves


def _siglip(rules: LRPRules, v: nn.Module, x: torch.Tensor):
    """transformers SiglipVisionModel: patches + position embeddings, post-LayerNorm, attention-pooling
    head (a learnt probe query over all tokens, nn.MultiheadAttention, then LayerNorm + MLP residual)."""
    if not v.config.vision_use_head:
        raise ValueError("LRP on SigLIP needs the attention-pooling head (vision_use_head): it is the pooled output")
    _check_size(x, int(v.config.image_size), "siglip")
    e, n = v.embeddings, x.shape[0]
    leaves = {"position": _constant(e.position_embedding.weight[None], n), "probe": _constant(v.head.probe, n)}
    h = _patches(rules, e.patch_embedding, x) + leaves["position"]
    for layer in v.encoder.layers:
        a, mlp = layer.self_attn, layer.mlp
        blk = _Block(layer.layer_norm1, a.q_proj, a.k_proj, a.v_proj, a.out_proj, a.num_heads, a.scale,
                     layer.layer_norm2, mlp.fc1, mlp.activation_fn, mlp.fc2)
        h = _block(rules, h, blk)
    h = rules.layer_norm(h, v.post_layernorm)
    head, mha = v.head, v.head.attention
    if mha.in_proj_weight is None or mha.bias_k is not None or mha.add_zero_attn or not mha.batch_first:
        raise ValueError("unsupported nn.MultiheadAttention layout in the SigLIP pooling head")
    biases = (None,) * 3 if mha.in_proj_bias is None else mha.in_proj_bias.chunk(3)
    q, k, val = (_split(rules.linear_fn(t, w, b), mha.num_heads)
                 for t, w, b in zip((leaves["probe"], h, h), mha.in_proj_weight.chunk(3), biases))
    att = rules.attention(q, k, val, mha.head_dim**-0.5).transpose(1, 2).reshape(n, 1, -1)
    att = rules.linear(att, mha.out_proj)
    m = rules.linear(rules.layer_norm(att, head.layernorm), head.mlp.fc1)
    m = rules.linear(rules.activation(head.mlp.activation_fn, m), head.mlp.fc2)
    return (att + m)[:, 0], leaves


FORWARDS = {"vit": _vit, "dinov3": _dinov3, "siglip": _siglip}


def lrp_relevance(
    backbone: Teacher, head_weight: torch.Tensor, images: torch.Tensor, classes: torch.Tensor, *, method: str,
    epsilon: float = 0.0, batch_size: int = 16,
) -> Relevance:
    """Relevance of the normalised pixels and constant inputs for pooled_output @ head_weight[:, c]."""
    if not isinstance(backbone, Teacher):
        raise TypeError(f"cp_lrp / attnlrp explain HF teachers, got {type(backbone).__name__} "
                        "(B-cos students explain themselves: method 'bcos')")
    rules, forward, vision = LRPRules(method, epsilon), FORWARDS[backbone.family], backbone.vision
    dtype = next(vision.parameters()).dtype
    parts = []
    for s in range(0, images.shape[0], batch_size):
        with torch.enable_grad():
            x = backbone.preprocess(images[s : s + batch_size]).to(dtype).detach().requires_grad_(True)
            pooled, leaves = forward(rules, vision, x)
            score = (pooled * class_weights(head_weight, classes[s : s + batch_size], pooled.dtype)).sum(dim=1)
            grads = torch.autograd.grad(score.sum(), [x, *leaves.values()], allow_unused=True)
        consts = {name: (leaf * g).flatten(1).sum(1) if g is not None else torch.zeros_like(score)
                  for (name, leaf), g in zip(leaves.items(), grads[1:])}
        parts.append(Relevance((x * grads[0]).detach(), {k: c.detach() for k, c in consts.items()}, score.detach()))
    return Relevance(torch.cat([p.pixels for p in parts]),
                     {k: torch.cat([p.constants[k] for p in parts]) for k in parts[0].constants},
                     torch.cat([p.score for p in parts]))


def cp_lrp(backbone: Teacher, head_weight: torch.Tensor, images: torch.Tensor, classes: torch.Tensor, *,
           epsilon: float = 0.0, batch_size: int = 16) -> torch.Tensor:
    """(N, 3, H, W) CP-LRP relevance (the ALOE authors' "AttnLRP" on HF teachers; see ``lrp_rules``)."""
    return lrp_relevance(backbone, head_weight, images, classes, method="cp_lrp", epsilon=epsilon,
                         batch_size=batch_size).pixels.float()


def attnlrp(backbone: Teacher, head_weight: torch.Tensor, images: torch.Tensor, classes: torch.Tensor, *,
            epsilon: float = 1e-6, batch_size: int = 16) -> torch.Tensor:
    """(N, 3, H, W) AttnLRP relevance (Achtibat et al. 2024; see ``lrp_rules``)."""
    return lrp_relevance(backbone, head_weight, images, classes, method="attnlrp", epsilon=epsilon,
                         batch_size=batch_size).pixels.float()
