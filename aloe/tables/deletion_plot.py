"""Fig. B3: pixel-deletion curves from the deletion records (``aloe.eval.deletion``).

One panel per backbone: the probability of the predicted class (y) as the most-attributed
fraction of 16 px blocks is zeroed (x), one line per explanation: the ALOE student's own W(x)x
(B-cos, thick) and each post-hoc method on the teacher. A faster drop means the map ranks the
pixels the model relies on first; the legend gives each curve's area (lower is better). An
unavailable record is not drawn: it is listed under the axes with its reason.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from aloe.records import STATUS_UNAVAILABLE, read_records, record_status
from aloe.tables.collect import MissingRecordError
from aloe.tables.names import (
    ALOE, BACKBONE_LABELS, BACKBONE_ORDER, METHOD_LABELS, METHOD_ORDER, TEACHER, label, ordered,
)
from aloe.tables.plots import not_shown, save_figure

METRIC = "deletion_area"


def _curves(record_paths: Iterable[str | os.PathLike]) -> dict[str, list[dict[str, Any]]]:
    by_backbone: dict[str, list[dict[str, Any]]] = {}
    for path in record_paths:
        for rec in read_records(path):
            if rec["metric"] != METRIC or rec["variant"] not in (TEACHER, ALOE):
                continue
            params = rec.get("params") or {}
            ok = record_status(rec) != STATUS_UNAVAILABLE
            by_backbone.setdefault(str(rec["backbone"]), []).append({
                "variant": rec["variant"], "method": str(params.get("method", "")),
                "fractions": list(params.get("fractions", [])) if ok else [],
                "curve": list(params.get("curve", [])) if ok else [], "area": rec.get("value") if ok else None,
                "status": "ok" if ok else "unavailable", "reason": rec.get("reason", ""), "source": str(path)})
    return by_backbone


def plot_deletion_curves(
    record_paths: Iterable[str | os.PathLike],
    out_png: str | os.PathLike,
    *,
    backbones: Sequence[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Draw Fig. B3; returns {backbone: [curve dicts: variant, method, fractions, curve (probability
    in [0, 1]), area, status, reason]}, the ALOE curve first, then the teacher's in method order."""
    by_backbone = _curves(record_paths)
    backbones = list(backbones) if backbones else ordered(by_backbone, BACKBONE_ORDER)
    if not backbones:
        raise MissingRecordError(f"no {METRIC} records of teachers or ALOE students")
    fig, axes = plt.subplots(1, len(backbones), figsize=(3.6 * len(backbones), 3.2), squeeze=False, sharey=True)
    out, skipped = {}, []
    for ax, b in zip(axes[0], backbones):
        if b not in by_backbone:
            raise MissingRecordError(f"no {METRIC} record for backbone={b!r}")
        curves = by_backbone[b]
        rank = {m: i for i, m in enumerate(ordered({c["method"] for c in curves}, METHOD_ORDER))}
        curves = sorted(curves, key=lambda c: (c["variant"] != ALOE, rank[c["method"]]))
        for i, c in enumerate(curves):
            name = "ALOE (B-cos)" if c["variant"] == ALOE else f"teacher ({label(c['method'], METHOD_LABELS)})"
            if c["status"] != "ok":
                skipped.append(f"{label(b, BACKBONE_LABELS)} {name}: {c['reason']}")
                continue
            ax.plot([100 * f for f in c["fractions"]], c["curve"], "-", marker="o", markersize=3,
                    linewidth=2.5 if c["variant"] == ALOE else 1.2, color="C3" if c["variant"] == ALOE else f"C{i}",
                    label=f"{name}: area {c['area']:.3f}")
        ax.set_title(label(b, BACKBONE_LABELS), fontsize=9)
        ax.set_xlabel("most-attributed pixels removed (%)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        out[b] = curves
    axes[0][0].set_ylabel("probability of the predicted class")
    not_shown(axes[0][0], skipped)
    save_figure(fig, out_png)
    return out
