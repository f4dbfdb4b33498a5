"""Linear-probe heads as objects: what ``explain`` needs to turn a class index into a target.

A head file is the workflow's ``results/metrics/linear_probe/{teacher}/{variant}/{dataset}.head.safetensors``
(``aloe.eval.probe_stages.run_linear_probe``'s ``head_out``): tensors ``weight`` (D, C) and ``bias``
(C,), metadata ``head`` (kind "linear" or "bcos"; absent = linear), ``backbone_checksum`` (the
weights whose features it was trained on) and optionally ``classes`` (a JSON list of the C class
names, ``CLASSES_KEY``).

A class's explained score is its logit less the bias: the bias is a constant that no input
contributes to, so W(x)·x plus the constant inputs' part still sums to the score. For a "bcos"
head (B = 2, no bias, ``aloe.eval.classifier.ProbedClassifier``) it is the B-cos logit, whose
dynamic factor is detached in explanation mode like every B-cos layer's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from safetensors import safe_open

from aloe.bcos import BcosLinear, explanation_mode
from aloe.models.checksums import checkpoint_checksum
from aloe.head_files import CLASSES_KEY, HEAD_KINDS, head_metadata  # noqa: F401 (re-exported)
from aloe.tensorfile import read_header



@dataclass
class LinearHead:
    """weight (D, C), bias (C,), kind "linear" | "bcos", class names if known. A plain object, not
    a module: attached to a student it does not enter the student's weights."""

    weight: torch.Tensor
    bias: torch.Tensor
    kind: str = "linear"
    classes: Optional[list[str]] = None
    backbone_checksum: Optional[str] = None
    source: Optional[str] = None  # the file it was read from

    def __post_init__(self) -> None:
        where = f"head {self.source}" if self.source else "head"
        if self.weight.ndim != 2 or tuple(self.bias.shape) != (self.weight.shape[1],):
            raise ValueError(f"{where}: weight must be (D, C) and bias (C,), got {tuple(self.weight.shape)}, "
                             f"{tuple(self.bias.shape)}")
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"{where}: kind must be one of {HEAD_KINDS}, got {self.kind!r}")
        if self.classes is not None and len(self.classes) != self.num_classes:
            raise ValueError(f"{where}: {len(self.classes)} class names for {self.num_classes} classes")

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[1])

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, C), as ``ProbedClassifier`` computes them (in ``pooled``'s dtype)."""
        return self.scores(pooled) + (self.bias.to(pooled) if self.kind == "linear" else 0)

    def scores(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, C) logits less the bias; in explanation mode for a "bcos" head."""
        weight = self.weight.to(pooled)
        if self.kind == "linear":
            return pooled @ weight
        with torch.random.fork_rng(devices=[]):  # its throw-away initialisation leaves the caller's RNG alone
            layer = BcosLinear(self.in_features, self.num_classes, b=2.0).to(pooled)
        with torch.no_grad():
            layer.weight.copy_(weight.T)
        layer.weight.requires_grad_(False)
        with explanation_mode(layer):
            return layer(pooled)

    def class_scores(self, pooled: torch.Tensor, classes: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """(N,) the score of ``classes[i]`` for image i."""
        index = torch.as_tensor(classes, device=pooled.device).long()
        if index.shape != (pooled.shape[0],):
            raise ValueError(f"need one class per image ({pooled.shape[0]}), got shape {tuple(index.shape)}")
        if bool(((index < 0) | (index >= self.num_classes)).any()):
            raise ValueError(f"class indices must lie in [0, {self.num_classes}), got {index.tolist()}")
        return self.scores(pooled).gather(1, index[:, None])[:, 0]


def load_head(path: str | os.PathLike, backbone: str | os.PathLike | None = None) -> LinearHead:
    """The head saved in ``path``. With ``backbone`` (a checkpoint folder or hub id), refuse a head
    trained on another backbone's features (its ``backbone_checksum`` metadata)."""
    read_header(path)  # a truncated or foreign file fails here, naming it
    with safe_open(str(path), framework="pt") as f:
        meta, names = f.metadata() or {}, set(f.keys())
        missing = sorted({"weight", "bias"} - names)
        if missing:
            raise ValueError(f"head {path} lacks tensors {missing}")
        weight, bias = f.get_tensor("weight"), f.get_tensor("bias")
    classes = None
    if CLASSES_KEY in meta:
        try:
            classes = json.loads(meta[CLASSES_KEY])
        except json.JSONDecodeError as err:
            raise ValueError(f"head {path}: metadata {CLASSES_KEY!r} is not JSON: {err}") from err
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"head {path}: metadata {CLASSES_KEY!r} must be a list of class names")
    head = LinearHead(weight, bias, meta.get("head", "linear"), classes, meta.get("backbone_checksum"), str(path))
    if backbone is not None and head.backbone_checksum != checkpoint_checksum(backbone):
        raise ValueError(f"head {path} was trained on features of another backbone (checksum mismatch)")
    return head
