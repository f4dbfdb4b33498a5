"""The report's explanation grid, drawn from the panels the eval stage computed
(``aloe.eval.explanation_panels``: a safetensors file of images and maps, a JSON record naming
them). PNG, matplotlib Agg backend, written atomically. Reads the two files; runs no model.

Rows are (backbone, image) pairs, grouped by backbone; the same images appear for every
backbone. Columns: input | B-cos W(x)x of the student for its predicted class | one column per
post-hoc method on the teacher for the teacher's predicted class ("n/a" where the backbone has
no map of that method). A prediction that is not the true class is flagged (red title, "✗").
Each method column has its colour bar under the grid: a signed scale (blue -, red +) for maps
with negative values, a one-sided one (0 to 1) for non-negative maps. 300 dpi.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from safetensors.numpy import load_file

from aloe.io import atomic_path, read_json
from aloe.records import PANELS_FORMAT
from aloe.tables.names import BACKBONE_LABELS, METHOD_LABELS, label

CELL_INCHES, HEADER_INCHES, FOOTER_INCHES, DPI = 1.9, 0.3, 0.5, 300
WRONG = "#c00000"  # title colour of a misprediction


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


def _title(ax, text: str, pred: int, true: int, cls) -> None:
    wrong = pred != true
    ax.set_title(("✗ " if wrong else "") + f"{text}: {cls(pred)}", fontsize=7, color=WRONG if wrong else "black")


def colour_scales(rec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """method -> "signed" (some map has negative values) or "one-sided" (every map is >= 0)."""
    scales = {}
    for m in rec["methods"]:
        maps = [arrays[f"{e['name']}/{m}"] for e in rec["backbones"] if m in e["methods"]]
        scales[m] = "one-sided" if maps and all(float(a.min()) >= 0 for a in maps) else "signed"
    return scales


def _draw(rec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]):
    names, keys, labels, methods = rec["class_names"], rec["keys"], rec["labels"], rec["methods"]
    cls = lambda c: names[c] if names and c < len(names) else str(c)  # noqa: E731
    backbones, scales = rec["backbones"], colour_scales(rec, arrays)
    columns = ["input", "bcos", *methods]
    rows, cols = len(backbones) * len(keys), len(columns)
    width_in, height_in = cols * CELL_INCHES, rows * CELL_INCHES + HEADER_INCHES + FOOTER_INCHES
    fig, axes = plt.subplots(rows, cols, figsize=(width_in, height_in), squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=FOOTER_INCHES / height_in, top=1 - HEADER_INCHES / height_in,
                        wspace=0.05, hspace=0.35)
    wrong: dict[str, dict[str, list[int]]] = {}
    shown: dict[str, Any] = {}
    for b, entry in enumerate(backbones):
        name = entry["name"]
        wrong[name] = {who: [i for i, (p, t) in enumerate(zip(entry[f"{who}_pred"], labels)) if int(p) != int(t)]
                       for who in ("student", "teacher")}
        for i in range(len(keys)):
            row, true = axes[b * len(keys) + i], int(labels[i])
            img = arrays[f"{name}/input"][i].transpose(1, 2, 0)
            row[0].imshow(img)
            row[0].set_title(f"true: {cls(true)}", fontsize=7)
            row[0].set_ylabel(entry.get("label") or label(name, BACKBONE_LABELS), fontsize=7)
            row[1].imshow(over_black(arrays[f"{name}/bcos"][i]))
            _title(row[1], "ALOE B-cos", int(entry["student_pred"][i]), true, cls)
            for j, m in enumerate(methods, start=2):
                mname = label(m, METHOD_LABELS)
                if m not in entry["methods"]:
                    row[j].text(0.5, 0.5, f"{mname}: n/a", ha="center", va="center", fontsize=7)
                    row[j].set_frame_on(False)
                    continue
                row[j].imshow(img.mean(-1), cmap="gray", vmin=0, vmax=1)
                one_sided = scales[m] == "one-sided"
                shown[m] = row[j].imshow(arrays[f"{name}/{m}"][i], cmap="inferno" if one_sided else "bwr",
                                         vmin=0 if one_sided else -1, vmax=1, alpha=0.75)
                _title(row[j], f"{mname} teacher", int(entry["teacher_pred"][i]), true, cls)
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    for j, m in enumerate(methods, start=2):
        if m in shown:  # the colour bar under the method's column
            pos = axes[-1][j].get_position()
            cax = fig.add_axes([pos.x0 + 0.1 * pos.width, 0.45 * FOOTER_INCHES / height_in, 0.8 * pos.width,
                                0.12 * FOOTER_INCHES / height_in])
            bar = fig.colorbar(shown[m], cax=cax, orientation="horizontal")
            bar.ax.tick_params(labelsize=5)
            bar.set_label(f"{label(m, METHOD_LABELS)} ({scales[m]})", fontsize=6)
    title = (f"Explanations on {rec['dataset']} ({rec['split']}): input | ALOE student's own B-cos W(x)x | "
             "post-hoc maps of the teacher (✗: mispredicted)")
    fig.suptitle(textwrap.fill(title, int(width_in * 13)), fontsize=7 if width_in < 8 else 8,
                 y=1 - 0.05 * HEADER_INCHES / height_in, va="top")
    return fig, columns, [round(width_in * DPI), round(height_in * DPI)], wrong, scales


def explanation_grid(out_png: str | os.PathLike, *, record: str | os.PathLike,
                     panels: str | os.PathLike) -> dict[str, Any]:
    """Render the grid of the panels ``record`` (JSON) and ``panels`` (safetensors) to ``out_png``;
    returns what it shows (sample keys, labels, columns, predictions, size in pixels)."""
    rec, arrays = read_panels(record, panels)
    fig, columns, size_px, wrong, scales = _draw(rec, arrays)
    try:
        with atomic_path(out_png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return {
        "out_png": str(out_png), "size_px": size_px, "keys": list(rec["keys"]), "labels": list(rec["labels"]),
        "columns": columns, "colour_scales": scales,
        "backbones": {e["name"]: {"student_pred": e["student_pred"], "teacher_pred": e["teacher_pred"],
                                  "mispredicted": wrong[e["name"]]} for e in rec["backbones"]},
    }
