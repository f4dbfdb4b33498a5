"""Numerical checks of a teacher -> student conversion, for any teacher (tests, benchmarks, users).

- :func:`b1_error`: with B = 1 the B-cos student is the teacher without biases, so on a teacher
  whose biases are zero (:func:`zero_biases_`) every hidden state must agree.
- :func:`completeness_error`: for B = 2, contributions plus the constant inputs' part must sum to
  the explained output (``explain``).

Run them in float64 for tight tolerances. :func:`perturb_scales_` moves LayerNorm scales and
LayerScale factors away from HF's initial 1.0, so that a mis-mapped scale shows.
"""

from __future__ import annotations

import torch
from torch import nn

from aloe.models.bcosify import bcosify
from aloe.models.explain import explain
from aloe.models.teacher import Teacher


@torch.no_grad()
def zero_biases_(module: nn.Module) -> int:
    """Zero every ``*bias`` parameter in place; returns how many tensors were zeroed."""
    biases = [p for name, p in module.named_parameters() if name.endswith("bias")]
    for p in biases:
        p.zero_()
    return len(biases)


@torch.no_grad()
def perturb_scales_(module: nn.Module, *, seed: int = 0, std: float = 0.2) -> int:
    """Draw LayerNorm weights and LayerScale factors (``*.lambda1``) from N(1, std²) in place."""
    g = torch.Generator().manual_seed(seed)
    scales = [m.weight for m in module.modules() if isinstance(m, nn.LayerNorm) and m.weight is not None]
    scales += [p for name, p in module.named_parameters() if name.endswith("lambda1")]
    for p in scales:
        p.copy_(1.0 + std * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return len(scales)


@torch.no_grad()
def b1_error(teacher: Teacher, pixels: torch.Tensor) -> float:
    """Largest |teacher - student(B=1)| over all hidden states, the last state and the pooled output."""
    student = bcosify(teacher, b=1)
    t, s = teacher(pixels, output_hidden_states=True), student(pixels, output_hidden_states=True)
    if len(t.hidden_states) != len(s.hidden_states):
        raise ValueError(f"teacher has {len(t.hidden_states)} hidden states, the student {len(s.hidden_states)}")
    pairs = list(zip(t.hidden_states, s.hidden_states)) + [(t.last_hidden_state, s.last_hidden_state),
                                                            (t.pooler_output, s.pooler_output)]
    for a, b in pairs:
        if a.shape != b.shape:  # never let broadcasting hide a token-layout mismatch
            raise ValueError(f"teacher output of shape {tuple(a.shape)}, student {tuple(b.shape)}")
    return max(float((a - b).abs().max()) for a, b in pairs)


def completeness_error(teacher: Teacher, pixels: torch.Tensor, *, b: float = 2.0, seed: int = 0) -> float:
    """Largest |image.sum + constant - target| / |target| for a random linear read-out of the
    pooled output of the B-cos student (``explain``)."""
    student = bcosify(teacher, b=b)
    dtype = next(student.parameters()).dtype
    w = torch.randn(student.hidden_size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    e = explain(student, pixels, lambda o: o.pooler_output @ w)
    err = (e.image.flatten(1).sum(1) + e.constant - e.target).abs() / e.target.abs().clamp_min(1e-30)
    return float(err.max())
