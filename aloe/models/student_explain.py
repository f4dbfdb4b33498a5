"""``student.explain(images, target, head=None)``: an explanation in one call.

Images: anything ``BcosImageProcessor`` takes (PIL images, paths, uint8 or float tensors and
arrays of any size), converted by the student's own processor; a float tensor (N, 3, H, W) is
taken as the pixels themselves, as for the forward pass (``aloe.models.pixels``).

Targets:

- a class index (int, or one per image: a list or an integer tensor) of a linear-probe head:
  ``head=`` (a head file or ``aloe.models.heads.load_head``'s object) or the attached one
  (``student.attach_head``, ``from_pretrained(..., head=)``); the score is the class's logit
  less its bias (``LinearHead.class_scores``);
- a text prompt (str, or one per image) for a SigLIP student with its teacher's text tower: the
  cosine of the student's image embedding with the prompt's text embedding, the similarity
  zero-shot scoring ranks by (``aloe.eval.zeroshot``). Its 1 / ||embedding|| is a dynamic
  factor, detached like every B-cos factor, so the contributions still sum to the cosine;
- a function of the student output, one scalar per image, as for ``aloe.models.explain``.

The result is the ``Explanation`` of ``aloe.models.explain`` with ``rgba`` (N, H, W, 4), the
B-cos colour images (``aloe.bcos.render``), and ``pixels``, the explained input.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Callable, Sequence

import numpy as np
import torch

from aloe.bcos import explanation_to_rgba, smooth_for
from aloe.models.explain import Explanation, explain
from aloe.models.heads import LinearHead, load_head
from aloe.models.outputs import EncoderOutput


def prompt_score(pooled: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """(N,) cosine of (N, D) image embeddings with (N, D) unit-norm text embeddings, the norm detached."""
    return (pooled * text).sum(-1) / pooled.norm(dim=-1).detach()


def student_pixels(student: Any, images: Any) -> torch.Tensor:
    if isinstance(images, torch.Tensor) and images.ndim == 4 and images.is_floating_point() and images.shape[1] == 3:
        return images
    pixels = student.image_processor(images)["pixel_values"]
    return pixels.to(device=student.norm.weight.device, dtype=student.weight_dtype)


def _per_image(values: Sequence[Any], n: int, what: str) -> list[Any]:
    values = list(values)
    if len(values) != n:
        raise ValueError(f"explain(): {len(values)} {what} for {n} images; give one, or one per image")
    return values


def _is_class_index(target: Any) -> bool:
    if isinstance(target, torch.Tensor):
        return not (target.is_floating_point() or target.is_complex() or target.dtype == torch.bool)
    if isinstance(target, (list, tuple)):
        return bool(target) and all(_is_class_index(t) for t in target)
    return isinstance(target, (numbers.Integral, np.integer)) and not isinstance(target, (bool, np.bool_))


def _head(student: Any, head: Any) -> LinearHead:
    if head is None:
        if student.probe_head is None:
            raise ValueError("explain(): a class index needs a linear-probe head: pass head= (a head file or "
                             "aloe.load_head(path)) or attach one with student.attach_head(path)")
        return student.probe_head
    if isinstance(head, (str, os.PathLike)):
        head = load_head(head)
    if not isinstance(head, LinearHead):
        raise TypeError(f"explain(): head must be a head file or aloe.load_head()'s object, got {type(head).__name__}")
    student.check_head(head)
    return head


def class_target(student: Any, target: Any, head: Any, n: int) -> Callable[[EncoderOutput], torch.Tensor]:
    probe = _head(student, head)
    if isinstance(target, torch.Tensor) and target.ndim == 0:
        target = int(target)
    classes = [int(target)] * n if not isinstance(target, (list, tuple, torch.Tensor)) else [
        int(c) for c in _per_image(target, n, "class indices")]
    return lambda o: probe.class_scores(o.pooler_output, classes)


def prompt_target(student: Any, target: str | Sequence[str], n: int) -> Callable[[EncoderOutput], torch.Tensor]:
    if student.config.family != "siglip":
        raise ValueError(f"explain(): a text prompt needs a SigLIP student with its text tower, this one is "
                         f"{student.config.family!r}")
    if student.text_tower is None:
        raise ValueError("explain(): this SigLIP student has no text tower; save it with "
                         "save_pretrained(dir, text_model=<teacher's SiglipModel>, tokenizer=<its tokenizer>) or "
                         "call student.attach_text_tower(...)")
    prompts = [target] * n if isinstance(target, str) else _per_image(target, n, "prompts")
    distinct = sorted(set(prompts))
    table = student.text_tower.prompt_embeddings(distinct)
    text = table[[distinct.index(p) for p in prompts]]
    return lambda o: prompt_score(o.pooler_output, text.to(o.pooler_output))


def explain_images(student: Any, images: Any, target: Any, head: Any = None) -> Explanation:
    pixels = student_pixels(student, images)
    n = pixels.shape[0]
    if isinstance(target, str) or (isinstance(target, (list, tuple)) and target
                                   and all(isinstance(t, str) for t in target)):
        fn = prompt_target(student, target, n)
    elif _is_class_index(target):
        fn = class_target(student, target, head, n)
    elif callable(target):
        if head is not None:
            raise ValueError("explain(): head= goes with a class index, not with a target function")
        fn = target
    else:
        raise TypeError(f"explain(): target must be a class index, a text prompt or a function of the student "
                        f"output, got {type(target).__name__} {target!r}")
    e = explain(student, pixels, fn)
    smooth = smooth_for(pixels.shape[-1])
    e.rgba = np.stack([explanation_to_rgba(w, c, smooth=smooth).astype(np.float32) for w, c in zip(e.weights, e.image)])
    e.pixels = pixels.detach()
    return e
