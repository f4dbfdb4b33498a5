"""Activations written as ``gate(x) * x`` so the gate can be detached in explanation mode."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aloe.bcos.mode import DynamicLinear


def _gelu_gate(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh_gate(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


# name -> (plain activation, gate such that activation(x) == gate(x) * x); names follow HF's ACT2FN
ACTIVATIONS = {
    "gelu": (F.gelu, _gelu_gate),
    "gelu_pytorch_tanh": (lambda x: F.gelu(x, approximate="tanh"), _gelu_tanh_gate),
    "silu": (F.silu, torch.sigmoid),
}


class DetachableActivation(DynamicLinear):
    def __init__(self, name: str):
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}")
        self.name = name
        self._plain, self._gate = ACTIVATIONS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explanation_mode:
            return self._gate(x).detach() * x
        return self._plain(x)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return self._gate(x)

    def extra_repr(self) -> str:
        return self.name
