"""Explanations from the model itself: contributions W(x)·x of the 6-channel input, plus the
contribution of the constant inputs ([CLS], registers, positions), which together sum to the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from aloe.bcos import explanation_mode, to_six_channel
from aloe.models.outputs import EncoderOutput
from aloe.models.pixels import check_pixels


@dataclass
class Explanation:
    image: torch.Tensor  # (N, 6, H, W) contributions W(x)·x on [x, 1 - x]
    constant: torch.Tensor  # (N,) contribution of the constant inputs
    target: torch.Tensor  # (N,) the explained value
    weights: torch.Tensor  # (N, 6, H, W) the dynamic linear map W(x)
    rgba: Optional[np.ndarray] = None  # (N, H, W, 4) B-cos colour images (student.explain; aloe.bcos.render)
    pixels: Optional[torch.Tensor] = None  # (N, 3, H, W) the explained input (student.explain)


def explain(student: Any, pixels: torch.Tensor, target: Callable[[EncoderOutput], torch.Tensor]) -> Explanation:
    """``target`` maps the student output to one scalar per image, e.g. ``lambda o: o.pooler_output @ w``.

    ``pixels`` as for the student's forward: float RGB (N, 3, H, W) in [0, 1] in the weights' dtype
    (``aloe.models.pixels``). Here the student has no classes of its own, so a class index is not
    a target: put a linear head in the function (``lambda o: o.pooler_output @ head.weight[c]``),
    or call ``student.explain``, which takes class indices, text prompts and images.
    """
    # a B-cos student is what has the six-channel forward and constant inputs (checked by what it
    # does, so that this module need not import the student, which imports it)
    if not (callable(getattr(student, "forward_six", None)) and callable(getattr(student, "constant_inputs", None))):
        raise TypeError(f"explain() needs a B-cos student, got {type(student).__name__}; "
                        "explain a conventional teacher with a post-hoc method instead")
    if not callable(target):
        raise TypeError(f"explain(): target must be a function of the student output giving one scalar per image "
                        f"(e.g. lambda o: o.pooler_output @ w), got {type(target).__name__} {target!r}; the student "
                        "has no classes: for a class index put its head in the function")
    check_pixels(pixels, student.weight_dtype, where="explain()")
    x6 = to_six_channel(pixels).detach().requires_grad_(True)
    constants = {k: v.detach().clone().requires_grad_(True) for k, v in student.constant_inputs(x6.shape[0]).items()}
    with torch.enable_grad(), explanation_mode(student):
        value = target(student.forward_six(x6, constants=constants))
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"explain(): target returned {type(value).__name__}, not a tensor of one scalar per image")
        if value.ndim != 1 or value.shape[0] != x6.shape[0]:
            raise ValueError(f"target must return one scalar per image, shape ({x6.shape[0]},), "
                             f"got {tuple(value.shape)}")
        inputs = [x6, *constants.values()]
        grads = torch.autograd.grad(value.sum(), inputs, allow_unused=True)
    weights = grads[0]
    constant = torch.zeros_like(value)
    for c, g in zip(constants.values(), grads[1:]):
        if g is not None:
            constant = constant + (g * c).flatten(1).sum(1)
    return Explanation(image=(weights * x6).detach(), constant=constant.detach(), target=value.detach(),
                       weights=weights.detach())
