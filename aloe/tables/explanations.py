"""The report's explanation grid, drawn from the panels the eval stage computed
(``aloe.eval.explanation_panels``: a safetensors file of images and maps, a JSON record naming
them). PNG, matplotlib Agg backend, written atomically. Reads the two files; runs no model.

Rows are (backbone, image) pairs, grouped by backbone; the same images appear for every
backbone. Columns: input | B-cos W(x)x of the student for its predicted class | one column per
post-hoc method on the teacher for the teacher's predicted class ("n/a" where the backbone has
no map of that method).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from safetensors.numpy import load_file

from aloe.io import atomic_path, read_json
from aloe.records import PANELS_FORMAT
from aloe.tables.names import BACKBONE_LABELS, METHOD_LABELS, label

CELL_INCHES, HEADER_INCHES, DPI = 1.9, 0.3, 100


def over_black(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) RGBA in [0, 1] -> (..., 3) RGB composited over black."""
    return rgba[..., :3] * rgba[..., 3:]


def read_panels(record: str | os.PathLike, panels: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The record and its arrays, checked against each other: every tensor the record names, with
    its shape, and no other."""
    rec = read_json(record)
    if not isinstance(rec, dict) or rec.get("format") != PANELS_FORMAT:
        raise ValueError(f"{record} is not an explanation-panels record (format {PANELS_FORMAT!r})")
    arrays = load_file(str(panels))
    named = {k: tuple(v) for k, v in rec["tensors"].items()}
    found = {k: tuple(a.shape) for k, a in arrays.items()}
    if named != found:
        diff = sorted(set(named.items()) ^ set(found.items()))
        raise ValueError(f"{panels} does not hold the tensors {record} names (name, shape differ: {diff})")
    return rec, arrays


def _draw(rec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]):
    names, keys, labels, methods = rec["class_names"], rec["keys"], rec["labels"], rec["methods"]
    cls = lambda c: names[c] if names and c < len(names) else str(c)  # noqa: E731
    backbones = rec["backbones"]
    columns = ["input", "bcos", *methods]
    rows, cols = len(backbones) * len(keys), len(columns)
    width_in, height_in = cols * CELL_INCHES, rows * CELL_INCHES + HEADER_INCHES
    fig, axes = plt.subplots(rows, cols, figsize=(width_in, height_in), squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.01, top=1 - HEADER_INCHES / height_in, wspace=0.05,
                        hspace=0.35)
    for b, entry in enumerate(backbones):
        name = entry["name"]
        for i in range(len(keys)):
            row = axes[b * len(keys) + i]
            img = arrays[f"{name}/input"][i].transpose(1, 2, 0)
            row[0].imshow(img)
            row[0].set_title(f"true: {cls(int(labels[i]))}", fontsize=7)
            row[0].set_ylabel(entry.get("label") or label(name, BACKBONE_LABELS), fontsize=7)
            row[1].imshow(over_black(arrays[f"{name}/bcos"][i]))
            row[1].set_title(f"ALOE B-cos: {cls(entry['student_pred'][i])}", fontsize=7)
            for j, m in enumerate(methods, start=2):
                mname = label(m, METHOD_LABELS)
                if m not in entry["methods"]:
                    row[j].text(0.5, 0.5, f"{mname}: n/a", ha="center", va="center", fontsize=7)
                    row[j].set_frame_on(False)
                    continue
                row[j].imshow(img.mean(-1), cmap="gray", vmin=0, vmax=1)
                row[j].imshow(arrays[f"{name}/{m}"][i], cmap="bwr", vmin=-1, vmax=1, alpha=0.75)
                row[j].set_title(f"{mname} teacher: {cls(entry['teacher_pred'][i])}", fontsize=7)
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"Explanations on {rec['dataset']} ({rec['split']}): "
                 "input | ALOE student's own B-cos W(x)x | post-hoc maps of the teacher (red +, blue -)",
                 fontsize=8, y=1 - 0.05 * HEADER_INCHES / height_in, va="top")
    return fig, columns, [round(width_in * DPI), round(height_in * DPI)]


def explanation_grid(out_png: str | os.PathLike, *, record: str | os.PathLike,
                     panels: str | os.PathLike) -> dict[str, Any]:
    """Render the grid of the panels ``record`` (JSON) and ``panels`` (safetensors) to ``out_png``;
    returns what it shows (sample keys, labels, columns, predictions, size in pixels)."""
    rec, arrays = read_panels(record, panels)
    fig, columns, size_px = _draw(rec, arrays)
    try:
        with atomic_path(out_png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return {
        "out_png": str(out_png), "size_px": size_px, "keys": list(rec["keys"]), "labels": list(rec["labels"]),
        "columns": columns,
        "backbones": {e["name"]: {"student_pred": e["student_pred"], "teacher_pred": e["teacher_pred"]}
                      for e in rec["backbones"]},
    }
