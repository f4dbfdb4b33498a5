"""LRP rules for transformers as forwards that keep each value and change its gradient.

Relevance of a tensor t is t * d(score)/dt ("gradient x input"): a layer whose backward maps the
output gradient g to the input gradient g' propagates relevance R = out * g to R' = in * g'. Each rule
below is therefore one forward whose value is the layer's, with a gradient chosen so that this holds
(the route of Arras et al. 2025, arXiv:2502.15886, which the AttnLRP authors' library also takes).
Equation numbers are those of AttnLRP (Achtibat et al., ICML 2024, arXiv:2402.05602):

* linear layers (nn.Linear, the patch-embedding convolution): epsilon rule (Eq. 8),
  R_x = x * W^T (R_z / (z + eps * sign z)); with eps = 0 this is the plain gradient (LRP-0);
* element-wise activations (GELU, SiLU, ...): identity rule (Eq. 9), R_x = R_y, i.e. the gradient
  act(x) / x (the "gate" act(x) / x of y = x * gate treated as a constant);
* LayerNorm: the centring x - mean(x) is linear (epsilon rule, eps = 0), 1/std gets the identity rule
  (Proposition 3.4 with Eq. 9: std detached), the affine part is linear;
* softmax: Taylor decomposition at its input without the bias term (Proposition 3.1),
  R_x = x * (R - s * sum R), which is exactly x times the plain softmax gradient, so no change;
* bilinear products: the matrix products q k^T and A V get the epsilon rule on their sums and the
  uniform rule on each product (Eq. 7, Proposition 3.3): half of the relevance to each factor, i.e.
  half the gradient; an element-wise product of two inputs (gated MLP) the uniform rule (Prop. 3.2).

CP-LRP (Ali et al., ICML 2022, "XAI for Transformers: Better Explanations through Conservative
Propagation"), as the ALOE authors ran "AttnLRP" on HF teachers: attention probabilities constant
(queries and keys get no gradient; A V is linear in V), LayerNorm's 1/std constant, activation gates
constant (the identity rule; a gated MLP's act(gate(x)) is constant too), gradient x input with eps = 0.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

LRP_METHODS = ("cp_lrp", "attnlrp")


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over keys in at least float32 (as the HF eager attention), back in the scores' dtype."""
    return torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1).to(scores.dtype)


def with_grad(value: torch.Tensor, x: torch.Tensor, slope) -> torch.Tensor:
    """``value`` in the forward pass; in the backward pass d(out)/dx = ``slope`` (element-wise).

    x - x.detach() is exactly 0, so the value is ``value`` bit for bit.
    """
    return value.detach() + (x - x.detach()) * slope


class LRPRules:
    """The propagation rules of ``method`` ("cp_lrp" | "attnlrp") with stabiliser ``epsilon``."""

    def __init__(self, method: str, epsilon: float = 0.0):
        if method not in LRP_METHODS:
            raise ValueError(f"unknown LRP method {method!r}; available: {LRP_METHODS}")
        if epsilon < 0:
            raise ValueError(f"LRP epsilon must be >= 0, got {epsilon}")
        self.method, self.epsilon = method, float(epsilon)
        self.attnlrp = method == "attnlrp"

    def epsilon_rule(self, z: torch.Tensor, share: float = 1.0) -> torch.Tensor:
        """At the output z of a sum (linear layer, matrix product): R_in = in * J^T (share * R_z / (z + eps sign z))."""
        if self.epsilon == 0.0:
            return z if share == 1.0 else with_grad(z, z, share)
        z0 = z.detach()
        sign = torch.where(z0 >= 0, 1.0, -1.0).to(z0.dtype)
        return with_grad(z, z, share * z0 / (z0 + self.epsilon * sign))

    def linear(self, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """An nn.Linear or nn.Conv2d (biases absorb their share of the relevance)."""
        return self.epsilon_rule(layer(x))

    def linear_fn(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return self.epsilon_rule(F.linear(x, weight, bias))

    def activation(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Identity rule: gradient act(x) / x, so that x * grad_x = act(x) * grad_out."""
        with torch.no_grad():
            y = fn(x)
            x0 = x.detach()
            ratio = y / torch.where(x0 == 0, torch.ones_like(x0), x0)  # at x = 0 the relevance is 0 either way
        return with_grad(y, x, ratio)

    def layer_norm(self, x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        """LayerNorm with 1/std constant (identity rule); centring and affine part are linear."""
        centred = x - x.mean(dim=-1, keepdim=True)
        std = (centred.pow(2).mean(dim=-1, keepdim=True) + ln.eps).sqrt()
        y = centred / std.detach()
        if ln.weight is not None:
            y = y * ln.weight
        return y if ln.bias is None else y + ln.bias

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """softmax(q k^T * scale) V per head; q (N, heads, Tq, d), k and v (N, heads, Tk, d)."""
        if not self.attnlrp:  # CP-LRP: attention probabilities constant, A V linear in V
            with torch.no_grad():
                probs = _softmax(q @ k.transpose(-1, -2) * scale)
            return self.epsilon_rule(probs @ v)
        scores = self.epsilon_rule(q @ k.transpose(-1, -2), share=0.5) * scale  # uniform rule: 1/2 to q, 1/2 to k
        probs = _softmax(scores)  # softmax rule = its plain gradient x input
        return self.epsilon_rule(probs @ v, share=0.5)  # uniform rule: 1/2 to A, 1/2 to V

    def gated(self, fn: Callable[[torch.Tensor], torch.Tensor], gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """act(gate) * up of a gated MLP: identity + uniform rule (AttnLRP), constant gate (CP-LRP)."""
        if not self.attnlrp:
            with torch.no_grad():
                g = fn(gate)
            return g * up
        prod = self.activation(fn, gate) * up
        return with_grad(prod, prod, 0.5)
