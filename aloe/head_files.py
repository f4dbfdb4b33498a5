"""The metadata of a linear-probe head file (no torch: the probe stages write it, ``aloe.models.heads``
reads it). Tensors ``weight`` (D, C) and ``bias`` (C,); metadata ``backbone_checksum``, ``dataset``,
``head`` (kind) and optionally ``classes`` (a JSON list of the C class names)."""

from __future__ import annotations

import json
from typing import Sequence

HEAD_KINDS = ("linear", "bcos")
CLASSES_KEY = "classes"


def head_metadata(backbone_checksum: str, dataset: str, kind: str,
                  classes: Sequence[str] | None = None) -> dict[str, str]:
    """The metadata a head file carries (for the writer of ``head_out``)."""
    meta = {"backbone_checksum": backbone_checksum, "dataset": dataset, "head": kind}
    if classes is not None:
        meta[CLASSES_KEY] = json.dumps(list(classes))
    return meta
