"""SigLIP's multihead attention-pooling (MAP) head, B-cos style."""

from __future__ import annotations

import torch
from torch import nn

from aloe.bcos.activation import DetachableActivation
from aloe.bcos.attention import attend
from aloe.bcos.linear import BcosLinear
from aloe.bcos.mlp import Mlp
from aloe.bcos.mode import DynamicLinear
from aloe.bcos.norm import BcosLayerNorm


class AttentionPooling(DynamicLinear):
    """SigLIP's multihead attention-pooling (MAP) head with a learned probe query.

    The probe only enters the attention logits, so with the matrix detached the pooled
    output is linear in the tokens and the probe adds no constant to the explanation.
    """

    def __init__(self, dim: int, num_heads: int, intermediate: int, act: str | DetachableActivation, eps: float,
                 b: float = 2.0, form: str = "cosine"):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.probe = nn.Parameter(torch.zeros(1, 1, dim))
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = BcosLinear(dim, dim, b=b, form=form)
        self.norm = BcosLayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, intermediate, act, b=b, form=form)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        return x.view(n, t, self.num_heads, -1).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[0]
        q = self._heads(self.q_proj(self.probe.expand(n, -1, -1)))
        k, v = self._heads(self.k_proj(tokens)), self._heads(self.v_proj(tokens))
        pooled = attend(q, k, v, detach_attention=self.explanation_mode).transpose(1, 2).reshape(n, 1, self.dim)
        pooled = self.o_proj(pooled)
        pooled = pooled + self.mlp(self.norm(pooled))
        return pooled[:, 0]
