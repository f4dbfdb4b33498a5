"""Multi-head self-attention that is linear in the values once the attention matrix is detached.

q, k and v are plain bias-free linear maps (they only shape the attention matrix, or are
linear anyway); the output projection is B-cos. Optional rotary embeddings act on q and k.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from aloe.bcos.linear import BcosLinear
from aloe.bcos.mode import DynamicLinear

RotaryFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, detach_attention: bool,
           record: Optional[list] = None) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v over (N, heads, T, d) tensors; the matrix is detached on request.

    With a ``record`` list the matrix is computed explicitly (not SDPA) and appended, still in the
    graph, for post-hoc attention explanations (CheferCAM, LeGrad).
    """
    if not detach_attention and record is None:
        return F.scaled_dot_product_attention(q, k, v)
    attn = torch.softmax((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)
    if record is not None:
        record.append(attn)
    return (attn.detach() if detach_attention else attn) @ v


class DynamicAttention(DynamicLinear):
    record: Optional[list] = None  # set to a list to record each attention matrix (see ``attend``)

    def __init__(self, dim: int, num_heads: int, b: float = 2.0, form: str = "cosine"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by {num_heads} heads")
        self.dim, self.num_heads = dim, num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = BcosLinear(dim, dim, b=b, form=form)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        return x.view(n, t, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, rotary: Optional[RotaryFn] = None) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        if rotary is not None:
            q, k = rotary(q, k)
        out = attend(q, k, v, detach_attention=self.explanation_mode, record=self.record)
        return self.o_proj(out.transpose(1, 2).reshape(x.shape))
