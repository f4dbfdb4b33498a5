"""Fig. 1's PCA view: the first three principal components of the final patch features as RGB,
the teacher beside its ALOE student, drawn from the explanation panels (``pca_teacher`` and
``pca_aloe`` of ``aloe.eval.explanation_panels``). Reads the two panel files; runs no model.

Per backbone three rows, one column per image: the input, the teacher's PCA view and the ALOE
student's. Patch features that the student mirrors give the same parts the same colours (up to
the order and sign of the components, which each PCA picks on its own). 300 dpi.
"""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from aloe.tables.explanations import read_panels
from aloe.tables.names import BACKBONE_LABELS, label
from aloe.tables.plots import save_figure

ROWS = (("input", "input"), ("pca_teacher", "teacher PCA"), ("pca_aloe", "ALOE PCA"))


def pca_figure(out_png: str | os.PathLike, *, record: str | os.PathLike, panels: str | os.PathLike) -> dict[str, Any]:
    """Draw the PCA view of the panels ``record`` and ``panels`` to ``out_png``; returns the rows
    drawn (backbone, what) and the number of images."""
    rec, arrays = read_panels(record, panels)
    backbones, n = [e["name"] for e in rec["backbones"]], len(rec["keys"])
    missing = [f"{b}/{k}" for b in backbones for k, _ in ROWS[1:] if f"{b}/{k}" not in arrays]
    if missing:
        raise ValueError(f"{panels} has no PCA panels {missing}: made before the PCA view existed; rerun "
                         "rule explanation_panels")
    fig, axes = plt.subplots(3 * len(backbones), n, figsize=(1.4 * n, 1.4 * 3 * len(backbones) + 0.3), squeeze=False)
    drawn = []
    for b, name in enumerate(backbones):
        for r, (key, what) in enumerate(ROWS):
            row = axes[3 * b + r]
            images = arrays[f"{name}/{key}"]
            for i, ax in enumerate(row):
                ax.imshow(images[i].transpose(1, 2, 0) if key == "input" else images[i], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            row[0].set_ylabel(f"{label(name, BACKBONE_LABELS)}\n{what}", fontsize=6)
            drawn.append((name, what))
    fig.suptitle(f"First three principal components of the final patch features as RGB ({rec['dataset']})",
                 fontsize=7)
    save_figure(fig, out_png)
    return {"out_png": str(out_png), "rows": drawn, "images": n}
