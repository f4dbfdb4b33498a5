"""The output record shared by teachers and students."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class EncoderOutput:
    """``last_hidden_state`` (N, T, D) after the final norm; ``pooler_output`` (N, D) the family's
    global feature; ``hidden_states`` (L + 1 tensors, embedding output first, then each block
    before the final norm) when requested."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor
    hidden_states: Optional[tuple[torch.Tensor, ...]] = None
