"""The report's explanation grid: test images, the ALOE student's own B-cos explanation and
post-hoc explanations of its teacher, side by side. PNG, matplotlib Agg backend, written atomically.

Rows are (backbone, image) pairs, grouped by backbone; the same images appear for every
backbone. Columns: input | B-cos W(x)x of the student for its predicted class | one column per
post-hoc method on the teacher for the teacher's predicted class. Both models classify through
their own linear-probe head (``aloe.eval.classifier.load_head`` refuses a head of another backbone).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from aloe.bcos import explanation_to_rgba  # noqa: E402
from aloe.data.eval_loader import EvalLoader  # noqa: E402
from aloe.eval.classifier import ProbedClassifier, load_head  # noqa: E402
from aloe.device import resolve_device  # noqa: E402
from aloe.models.backbones import load_backbone  # noqa: E402
from aloe.io import atomic_path  # noqa: E402
from aloe.models import explain  # noqa: E402
from aloe.tables.names import BACKBONE_LABELS, METHOD_LABELS, label  # noqa: E402

CELL_INCHES, HEADER_INCHES, DPI = 1.9, 0.3, 100
BACKBONE_KEYS = ("name", "teacher_path", "teacher_head", "student_path", "student_head")


def _sample_rank(seed: int, key: str) -> str:
    """Order-free pseudo-random rank of a sample: the same images whatever the shard/worker order."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def pick_images(dataset_dir: str, split: str, image_size: int, num_images: int, seed: int = 0):
    """``num_images`` test images of distinct classes (fewer if the split has fewer classes), one
    pass over the split keeping only the chosen images: per class the sample of lowest rank, of
    the classes whose lowest rank is smallest. Returns (pixels, labels, keys), sorted by label."""
    loader = EvalLoader(dataset_dir, split, image_size=image_size, batch_size=64)
    if loader.task != "classification":
        raise ValueError(f"{dataset_dir}: explanation grid needs a classification dataset, task is {loader.task!r}")
    best: dict[int, tuple[str, str, torch.Tensor]] = {}  # label -> (rank, key, pixels)
    for batch in loader:
        for x, y, key in zip(batch.pixels, batch.labels.tolist(), batch.keys):
            rank = _sample_rank(seed, key)
            if y in best:
                if rank < best[y][0]:
                    best[y] = (rank, key, x.clone())
            elif len(best) < num_images:
                best[y] = (rank, key, x.clone())
            else:
                worst = max(best, key=lambda c: best[c][0])
                if rank < best[worst][0]:  # a class whose minimum was beaten can never come back with it
                    del best[worst]
                    best[y] = (rank, key, x.clone())
    if not best:
        raise ValueError(f"{dataset_dir} split {split!r} has no readable images")
    labels = sorted(best)
    return torch.stack([best[c][2] for c in labels]), torch.tensor(labels), [best[c][1] for c in labels]


def images_by_key(dataset_dir: str, split: str, image_size: int, keys: Sequence[str]) -> torch.Tensor:
    """The images with these sample keys, in this order, at ``image_size``."""
    found: dict[str, torch.Tensor] = {}
    for batch in EvalLoader(dataset_dir, split, image_size=image_size, batch_size=64):
        found.update({k: x.clone() for k, x in zip(batch.keys, batch.pixels) if k in keys})
    missing = [k for k in keys if k not in found]
    if missing:
        raise ValueError(f"{dataset_dir} split {split!r} lacks samples {missing}")
    return torch.stack([found[k] for k in keys])


def bcos_rgb(weights: torch.Tensor, contributions: torch.Tensor) -> np.ndarray:
    """(H, W, 3) B-cos colour image over black; the smoothing kernel scales with the image (15 px at 224)."""
    size = weights.shape[-1]
    smooth = max(1, round(15 * size / 224)) | 1
    rgba = explanation_to_rgba(weights, contributions, smooth=smooth)
    return rgba[..., :3] * rgba[..., 3:]


def heat_map(attribution: torch.Tensor) -> np.ndarray:
    """One image's attribution ((C,) H, W) -> (H, W) in [-1, 1], scaled by its 99.5th |percentile|."""
    a = attribution.detach().double().cpu()
    a = a.sum(0) if a.ndim == 3 else a
    scale = torch.quantile(a.abs().flatten(), 0.995)
    return (a / (scale + 1e-12)).clamp(-1, 1).numpy()


def _check_backbone(entry: Mapping[str, Any], i: int) -> None:
    missing = [k for k in BACKBONE_KEYS if k not in entry]
    if missing:
        raise ValueError(f"backbones[{i}] ({entry.get('name', '?')}) lacks keys {missing}; needs {BACKBONE_KEYS}")


def _classifier(path: str, kind: str, head: str) -> ProbedClassifier:
    weight, bias = load_head(head, path)
    return ProbedClassifier(load_backbone(path, kind), weight, bias).eval()


def explain_backbone(teacher: ProbedClassifier, student: ProbedClassifier, images: torch.Tensor,
                     methods: Sequence[str], method_options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Predictions and rendered panels of one backbone: the student's B-cos image, the teacher's maps."""
    from aloe.eval.attributions import make_attribution_fn  # captum is slow to import

    with torch.no_grad():
        s_pred, t_pred = student(images).argmax(1), teacher(images).argmax(1)
    w = student.weight[:, s_pred].T  # (N, D): the predicted class's head column; its bias is constant
    e = explain(student.backbone, images, lambda o: (o.pooler_output.float() * w).sum(1))
    maps = {}
    for m in methods:
        attribute = make_attribution_fn(m, teacher, **dict(method_options.get(m, {})))
        maps[m] = [heat_map(a) for a in attribute(images, t_pred)]
    return {
        "student_pred": s_pred.tolist(), "teacher_pred": t_pred.tolist(),
        "bcos": [bcos_rgb(wi, ci) for wi, ci in zip(e.weights, e.image)], "maps": maps,
    }  # fmt: skip


def explanation_grid(
    out_png: str | os.PathLike,
    *,
    backbones: Sequence[Mapping[str, Any]],
    dataset_dir: str,
    split: str = "test",
    num_images: int = 4,
    seed: int = 0,
    methods: Sequence[str] = ("ig",),
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Render the grid to ``out_png``; returns what it shows (sample keys, labels, predictions).

    ``backbones``: dicts with ``name`` (the config's teacher name), ``teacher_path`` (for
    ``load_teacher``), ``teacher_head``, ``student_path`` (ALOE student dir), ``student_head``
    (the linear-probe heads ``results/metrics/linear_probe/{name}/{teacher,aloe}/{dataset}.head.safetensors``),
    optionally ``methods`` (a subset of ``methods`` for this backbone, e.g. no CheferCAM for
    SigLIP; other cells read "n/a") and ``label``. ``methods``: post-hoc methods of
    ``aloe.eval.attributions`` on the teacher; ``method_options``: method -> keyword options.
    """
    device = resolve_device(device)
    if not backbones:
        raise ValueError("explanation_grid needs at least one backbone")
    if "bcos" in methods:
        raise ValueError("methods are post-hoc methods on the teacher; the B-cos column is always shown")
    for i, entry in enumerate(backbones):
        _check_backbone(entry, i)
        extra = set(entry.get("methods", methods)) - set(methods)
        if extra:
            raise ValueError(f"backbones[{i}] ({entry['name']}) methods {sorted(extra)} are not in methods {list(methods)}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    method_options = method_options or {}
    meta = EvalLoader(dataset_dir, split, image_size=8, batch_size=1)
    if meta.task != "classification":
        raise ValueError(f"{dataset_dir}: explanation grid needs a classification dataset, task is {meta.task!r}")
    names = meta.class_names
    cls = lambda c: names[c] if names and c < len(names) else str(c)  # noqa: E731

    results, keys, labels, inputs = {}, None, None, {}
    for entry in backbones:
        teacher = _classifier(entry["teacher_path"], "teacher", entry["teacher_head"]).to(device)
        student = _classifier(entry["student_path"], "student", entry["student_head"]).to(device)
        size = int(teacher.backbone.image_size)
        if keys is None:
            pixels, labels, keys = pick_images(dataset_dir, split, size, num_images, seed)
            inputs[size] = pixels
        elif size not in inputs:
            inputs[size] = images_by_key(dataset_dir, split, size, keys)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            results[entry["name"]] = explain_backbone(teacher, student, inputs[size].to(device),
                                                      entry.get("methods", methods), method_options)  # fmt: skip
        results[entry["name"]]["size"] = size
        del teacher, student

    columns = ["input", "bcos", *methods]
    rows, cols = len(backbones) * len(keys), len(columns)
    width_in, height_in = cols * CELL_INCHES, rows * CELL_INCHES + HEADER_INCHES
    fig, axes = plt.subplots(rows, cols, figsize=(width_in, height_in), squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.01, top=1 - HEADER_INCHES / height_in, wspace=0.05,
                        hspace=0.35)  # fmt: skip
    for b, entry in enumerate(backbones):
        r = results[entry["name"]]
        own = entry.get("methods", methods)
        for i, key in enumerate(keys):
            row = axes[b * len(keys) + i]
            img = inputs[r["size"]][i].permute(1, 2, 0).numpy()
            row[0].imshow(img)
            row[0].set_title(f"true: {cls(int(labels[i]))}", fontsize=7)
            row[0].set_ylabel(entry.get("label", label(entry["name"], BACKBONE_LABELS)), fontsize=7)
            row[1].imshow(r["bcos"][i])
            row[1].set_title(f"ALOE B-cos: {cls(r['student_pred'][i])}", fontsize=7)
            for j, m in enumerate(methods, start=2):
                mname = label(m, METHOD_LABELS)
                if m not in own:
                    row[j].text(0.5, 0.5, f"{mname}: n/a", ha="center", va="center", fontsize=7)
                    row[j].set_frame_on(False)
                    continue
                row[j].imshow(img.mean(-1), cmap="gray", vmin=0, vmax=1)
                row[j].imshow(r["maps"][m][i], cmap="bwr", vmin=-1, vmax=1, alpha=0.75)
                row[j].set_title(f"{mname} teacher: {cls(r['teacher_pred'][i])}", fontsize=7)
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"Explanations on {os.path.basename(os.path.normpath(dataset_dir))} ({split}): "
                 "input | ALOE student's own B-cos W(x)x | post-hoc maps of the teacher (red +, blue -)",
                 fontsize=8, y=1 - 0.05 * HEADER_INCHES / height_in, va="top")  # fmt: skip
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return {
        "out_png": str(out_png), "size_px": [round(width_in * DPI), round(height_in * DPI)], "keys": list(keys),
        "labels": [int(c) for c in labels], "columns": columns,
        "backbones": {n: {"student_pred": r["student_pred"], "teacher_pred": r["teacher_pred"]}
                      for n, r in results.items()},
    }  # fmt: skip
