"""Attention probabilities that stay in the autograd graph, for teachers and B-cos students alike.

Teachers (HF encoders) return them through ``output_attentions=True``, which transformers 5 only
supports with the eager attention implementation (SDPA / flash never form the matrix), so the
vision encoder is switched to "eager" for the forward pass and switched back afterwards. B-cos
students record them through ``DynamicAttention.record`` (which also bypasses SDPA). The attention-
pooling (MAP) head of SigLIP is re-run by ``map_head`` with its per-head probabilities exposed, on
any block's tokens (LeGrad's SigLIP path).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from aloe.bcos import AttentionPooling, DynamicAttention
from aloe.models import BcosStudent, Teacher


@contextlib.contextmanager
def eager_attention(module: nn.Module) -> Iterator[None]:
    """Attention probabilities are only returned by the eager implementation."""
    previous = module.config._attn_implementation
    module.set_attn_implementation("eager")
    try:
        yield
    finally:
        module.set_attn_implementation(previous)


@contextlib.contextmanager
def recorded_attention(student: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Every ``DynamicAttention`` of ``student`` appends its softmax matrix to the yielded list."""
    layers = [m for m in student.modules() if isinstance(m, DynamicAttention)]
    record: list[torch.Tensor] = []
    for m in layers:
        m.record = record
    try:
        yield record
    finally:
        for m in layers:
            m.record = None


@dataclass
class AttentionTrace:
    pooled: torch.Tensor  # (N, D) the backbone's pooler_output (the probed global feature)
    attentions: list[torch.Tensor]  # L tensors (N, heads, T, T), softmax probabilities, in the graph
    hidden_states: Optional[tuple[torch.Tensor, ...]]  # L + 1 (N, T, D) when requested: embeddings, then blocks
    readout: Callable[[torch.Tensor], torch.Tensor]  # block output tokens (N, T, D) -> global feature (N, D)
    norm: nn.Module  # the final norm (the backbone's ``final_norm``)
    head: Optional[nn.Module] = None  # the MAP head (SigLIP) applied after ``norm``; None for [CLS] pooling
    pool: Optional[Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = None  # ``map_head(head)``


def _teacher_readout(teacher: Teacher) -> Callable[[torch.Tensor], torch.Tensor]:
    """Final norm + pooling of the teacher, applicable to any block's output tokens."""
    v = teacher.vision
    if teacher.family == "vit":
        return lambda h: v.layernorm(h)[:, 0]
    if teacher.family == "dinov3":
        return lambda h: v.norm(h)[:, 0]
    return lambda h: v.head(v.post_layernorm(h))  # SigLIP: post-LayerNorm + attention-pooling head


def _student_readout(student: BcosStudent) -> Callable[[torch.Tensor], torch.Tensor]:
    if student.head is None:
        return lambda h: student.norm(h)[:, 0]
    return lambda h: student.head(student.norm(h))


def map_head(head: nn.Module) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """tokens (N, T, D) -> (head(tokens) (N, D), its attention probabilities (N, heads, 1, T), in the graph).

    Re-states the forward of HF's ``SiglipMultiheadAttentionPoolingHead`` (a torch MultiheadAttention,
    which only returns head-averaged weights outside the graph) or of the student's ``AttentionPooling``.
    """
    if isinstance(head, AttentionPooling):  # bias-free q, k, v; B-cos output projection
        projections = (head.q_proj, head.k_proj, head.v_proj)
        o_proj, norm, heads = head.o_proj, head.norm, head.num_heads
    else:  # torch MultiheadAttention: packed in-projection with bias
        mha = head.attention
        packed = zip(mha.in_proj_weight.chunk(3), mha.in_proj_bias.chunk(3))
        projections = tuple(partial(F.linear, weight=w, bias=b) for w, b in packed)
        o_proj, norm, heads = mha.out_proj, head.layernorm, mha.num_heads

    def run(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, d = tokens.shape

        def split(x: torch.Tensor) -> torch.Tensor:  # (N, T, D) -> (N, heads, T, D / heads)
            return x.view(n, x.shape[1], heads, d // heads).transpose(1, 2)

        inputs = (head.probe.expand(n, -1, -1), tokens, tokens)
        q, k, v = (split(proj(x)) for proj, x in zip(projections, inputs))
        probs = torch.softmax((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5, dim=-1)
        pooled = o_proj((probs @ v).transpose(1, 2).reshape(n, 1, d))
        return (pooled + head.mlp(norm(pooled)))[:, 0], probs

    return run


def trace_attention(backbone: nn.Module, images: torch.Tensor, output_hidden_states: bool = False) -> AttentionTrace:
    """Forward ``images`` (raw pixels in [0, 1]) with grad, keeping every layer's attention matrix.

    The input is made to require grad so that the matrices of a frozen teacher are in the graph.
    """
    x = images.detach().requires_grad_(True)
    if isinstance(backbone, Teacher):
        with eager_attention(backbone.vision), torch.enable_grad():
            out = backbone.vision(pixel_values=backbone.preprocess(x), output_attentions=True,
                                  output_hidden_states=output_hidden_states)
        pooled = out.last_hidden_state[:, 0] if backbone.family == "vit" else out.pooler_output
        hidden = tuple(out.hidden_states) if output_hidden_states else None
        head = backbone.vision.head if backbone.family == "siglip" else None
        return AttentionTrace(pooled, list(out.attentions), hidden, _teacher_readout(backbone), backbone.final_norm,
                              head, map_head(head) if head is not None else None)
    if isinstance(backbone, BcosStudent):
        with recorded_attention(backbone) as record, torch.enable_grad():
            out = backbone(x.to(next(backbone.parameters()).dtype), output_hidden_states=output_hidden_states)
        head = backbone.head
        return AttentionTrace(out.pooler_output, list(record), out.hidden_states, _student_readout(backbone),
                              backbone.final_norm, head, map_head(head) if head is not None else None)
    raise TypeError(f"attention explanations need an aloe Teacher or BcosStudent, got {type(backbone).__name__}")


def class_weights(head_weight: torch.Tensor, classes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, D) head column of each image's class: logit_c - bias_c = pooled · w."""
    return head_weight.detach().to(dtype)[:, classes.long()].T
