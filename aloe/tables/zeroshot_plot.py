"""Zero-shot text explanations: for each SigLIP backbone of the explanation panels, the ALOE
student's own W(x)x of the similarity between each image and each class prompt of the teacher's
text tower (``{name}/zeroshot`` of ``aloe.eval.explanation_panels``). Reads the panel files;
runs no model.

Per SigLIP backbone one row per image: the input, then one column per prompt; the prompt of the
image's own class is framed. 300 dpi.
"""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from aloe.tables.explanations import over_black, read_panels
from aloe.tables.names import BACKBONE_LABELS, label
from aloe.tables.plots import save_figure


def zero_shot_figure(out_png: str | os.PathLike, *, record: str | os.PathLike,
                     panels: str | os.PathLike) -> dict[str, Any]:
    """Draw the zero-shot text explanations to ``out_png``; returns the backbones shown and the
    prompts. A panel set without SigLIP text towers gives a figure that says so."""
    rec, arrays = read_panels(record, panels)
    shown = [e["name"] for e in rec["backbones"] if e.get("zero_shot")]
    prompts, labels = list(rec.get("zero_shot_prompts") or []), rec["labels"]
    if not shown:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "no SigLIP backbone with a text tower among the explained ones", ha="center",
                va="center", fontsize=8)
        ax.set_axis_off()
        save_figure(fig, out_png)
        return {"out_png": str(out_png), "backbones": [], "prompts": prompts}
    n = len(rec["keys"])
    fig, axes = plt.subplots(n * len(shown), 1 + len(prompts), figsize=(1.5 * (1 + len(prompts)),
                             1.5 * n * len(shown) + 0.4), squeeze=False)
    for b, name in enumerate(shown):
        maps = arrays[f"{name}/zeroshot"]
        for i in range(n):
            row = axes[b * n + i]
            row[0].imshow(arrays[f"{name}/input"][i].transpose(1, 2, 0))
            row[0].set_ylabel(label(name, BACKBONE_LABELS), fontsize=6)
            for j, prompt in enumerate(prompts, start=1):
                row[j].imshow(over_black(maps[i, j - 1]))
                if i == 0:
                    row[j].set_title(prompt, fontsize=6)
                if j - 1 == i or prompts[j - 1] == prompts[i]:  # the image's own class
                    for side in row[j].spines.values():
                        side.set_color("#2ca02c")
                        side.set_linewidth(2)
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle("ALOE W(x)x of the image-text similarity (SigLIP text tower), per class prompt; "
                 f"framed: the image's class ({rec['dataset']}; classes {sorted(set(labels))})", fontsize=7)
    save_figure(fig, out_png)
    return {"out_png": str(out_png), "backbones": shown, "prompts": prompts}
