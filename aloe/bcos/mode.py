"""Explanation mode: one switch that makes a B-cos model an explicit dynamic-linear map.

In explanation mode every input-dependent factor (the B-cos scale, LayerNorm's std, the
activation gates, the attention matrix) is detached from the graph. The forward value is
unchanged, but the input gradient of an output then equals the dynamic linear map W(x), so
W(x)·x reproduces the output exactly.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


class DynamicLinear(nn.Module):
    """Base for layers whose input-dependent factors can be detached."""

    explanation_mode: bool = False


@contextlib.contextmanager
def explanation_mode(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Switch every :class:`DynamicLinear` layer of ``model`` into (or out of) explanation mode."""
    layers = [m for m in model.modules() if isinstance(m, DynamicLinear)]
    previous = [m.explanation_mode for m in layers]
    for m in layers:
        m.explanation_mode = enabled
    try:
        yield model
    finally:
        for m, p in zip(layers, previous):
            m.explanation_mode = p
