"""B-cos linear and patch-convolution layers (unnormalised weights, no bias).

``form`` picks the dynamic factor (config ``baselines.bcos_form`` for the baselines; ``FORMS``):

- ``cosine`` (default): ``out = (w·x) * |cos(w, x)|^(B-1)`` with
  ``cos = w·x / ((||w|| + eps)(||x|| + eps))``, the B-cos transform as the B-cosification and ALOE
  papers write it with weights that are not unit-normalised;
- ``bcosification_code``: the released B-cosification code (``BcosifyLinear`` / ``BcosifyConv2d``
  of shrebox/B-cosification), whose factor ``|w·x| / ||x||`` divides by ||x|| only:
  ``out = (w·x) * (|w·x| / (||x|| + eps))^(B-1)``, i.e. ``||w||^(B-1)`` times the ``cosine`` form
  (B-cos v2's factor, written for unit-norm weights, applied to unnormalised ones).

With B = 1 both are a plain bias-free linear map, which is what makes the teacher-equivalence
test possible.

For B = 2 outside explanation mode the linear layer uses an equivalent factorised form,
``z = (x / sqrt(||x|| + eps)) @ (w / sqrt(||w|| + eps))ᵀ; out = z·|z|``, which moves the
normalisation onto the (smaller) input and weight tensors and needs a single fused
signed-square on the output: on CPU the elementwise passes over the output, not the matmul,
dominated the naive form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aloe.bcos.mode import DynamicLinear

EPS = 1e-6
FORMS = ("cosine", "bcosification_code")


def check_form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"B-cos form must be one of {FORMS}, got {form!r}")
    return form


def bcos_scale(linear_out: torch.Tensor, w_norm: torch.Tensor | None, x_norm: torch.Tensor, b: float) -> torch.Tensor:
    """The dynamic factor |cos|^(B-1), broadcast against ``linear_out``; ``w_norm=None``: the
    ``bcosification_code`` factor (|w·x| / ||x||)^(B-1)."""
    cos = linear_out / (x_norm + EPS) if w_norm is None else linear_out / ((w_norm + EPS) * (x_norm + EPS))
    scale = cos.abs()
    if b != 2:
        scale = scale.pow(b - 1)
    return scale


class _SignedSquare(torch.autograd.Function):
    """z -> z·|z| with the two-pass backward 2·|z|·grad."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return z * z.abs()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return grad * z.abs() * 2


class BcosLinear(DynamicLinear):
    def __init__(self, in_features: int, out_features: int, b: float = 2.0, form: str = "cosine"):
        super().__init__()
        if b < 1:
            raise ValueError(f"B-cos exponent b must be >= 1, got {b}")
        self.in_features, self.out_features, self.b = in_features, out_features, float(b)
        self.form = check_form(form)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"BcosLinear expects last dim {self.in_features}, got shape {tuple(x.shape)}")
        if self.b == 1:
            return F.linear(x, self.weight)
        cosine = self.form == "cosine"
        if self.b == 2 and not self.explanation_mode:
            ws = self.weight / (self.weight.norm(dim=1, keepdim=True) + EPS).sqrt() if cosine else self.weight
            xs = x / (x.norm(dim=-1, keepdim=True) + EPS).sqrt()
            return _SignedSquare.apply(F.linear(xs, ws))
        out = F.linear(x, self.weight)
        x_norm = x.norm(dim=-1, keepdim=True)
        w_norm = self.weight.norm(dim=1) if cosine else None
        scale = bcos_scale(out, w_norm, x_norm, self.b)
        if self.explanation_mode:
            scale = scale.detach()
        return out * scale

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, b={self.b}, form={self.form}"


class BcosConv2d(DynamicLinear):
    """B-cos convolution; ||x|| is the norm of each receptive field (all input channels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 b: float = 2.0, form: str = "cosine"):
        super().__init__()
        if b < 1:
            raise ValueError(f"B-cos exponent b must be >= 1, got {b}")
        self.in_channels, self.out_channels, self.b = in_channels, out_channels, float(b)
        self.form = check_form(form)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"BcosConv2d expects (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        out = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)
        if self.b == 1:
            return out
        k = self.kernel_size
        # sum of squares over each receptive field = avg-pool of the channel-summed squares * k²
        patch_sq = F.avg_pool2d(x.pow(2).sum(1, keepdim=True), k, stride=self.stride, padding=self.padding,
                                count_include_pad=True, divisor_override=1)
        x_norm = patch_sq.clamp_min(0).sqrt()
        w_norm = self.weight.flatten(1).norm(dim=1)[None, :, None, None] if self.form == "cosine" else None
        scale = bcos_scale(out, w_norm, x_norm, self.b)
        if self.explanation_mode:
            scale = scale.detach()
        return out * scale

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, b={self.b}, form={self.form}")
