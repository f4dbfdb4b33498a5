"""The report's explanation panels: test images, the ALOE student's own B-cos explanation and
post-hoc explanations of its teacher, computed here and drawn by ``aloe.tables.explanations``.

For every backbone (a teacher and its ALOE student, each classifying through its own linear-probe
head: ``load_head`` refuses a head of another backbone) and the same test images (one per class,
chosen by a seeded hash of the sample key): the input at the backbone's image size, the student's
B-cos W(x)x for its predicted class as an RGBA image, and one heat map per post-hoc method on the
teacher for the teacher's predicted class.

The artifact is two files, each written atomically, the tensors first:

``panels_out`` (safetensors, ``aloe.tensorfile.save_tensors``), float32 tensors per backbone name:
    ``{name}/input``    (N, 3, S, S) pixels in [0, 1]
    ``{name}/bcos``     (N, S, S, 4) RGBA in [0, 1] (``aloe.bcos.explanation_to_rgba``)
    ``{name}/{method}`` (N, S, S) attribution summed over channels, scaled by its 99.5th
                        |percentile|, in [-1, 1]; only the backbone's own methods
    ``{name}/pca_teacher``, ``{name}/pca_aloe`` (N, h, w, 3) in [0, 1]: the first three
                        principal components of the final patch features as RGB (Fig. 1's PCA
                        view; ``pca_rgb``), teacher and ALOE student each their own PCA
    ``{name}/zeroshot`` (N, P, S, S, 4) RGBA, SigLIP backbones with a text tower only: the ALOE
                        student's W(x)x of its image embedding's dot product with the teacher's
                        text embedding of each prompt "a photo of a {class}." (P = the panel
                        images' classes, in order; the record's ``zero_shot_prompts``)

``out`` (JSON): what the figure names and where it comes from: ``keys``, ``labels``,
``class_names``, ``methods``, per backbone its ``image_size``, ``methods``, ``student_pred`` and
``teacher_pred`` (argmax of the head's logits), checkpoint checksums and head paths; ``tensors``
(name -> shape) and ``panels_checksum`` (``tensors_checksum`` of ``panels_out``).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from aloe.bcos import explanation_to_rgba, smooth_for
from aloe.data.eval_loader import EvalLoader
from aloe.device import resolve_device
from aloe.eval.classifier import ProbedClassifier, load_head
from aloe.io import write_json
from aloe.models import explain
from aloe.models.backbones import checkpoint_checksum, load_backbone
from aloe.records import PANELS_FORMAT, code_version
from aloe.tensorfile import save_tensors, tensors_checksum

BACKBONE_KEYS = ("name", "teacher_path", "teacher_head", "student_path", "student_head")
ZERO_SHOT_TEMPLATE = "a photo of a {}."  # the paper's single zero-shot prompt


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


def bcos_rgba(weights: torch.Tensor, contributions: torch.Tensor) -> np.ndarray:
    """(H, W, 4) B-cos colour image; the smoothing kernel scales with the image (15 px at 224)."""
    return explanation_to_rgba(weights, contributions, smooth=smooth_for(weights.shape[-1])).astype(np.float32)


def heat_map(attribution: torch.Tensor) -> np.ndarray:
    """One image's attribution ((C,) H, W) -> (H, W) in [-1, 1], scaled by its 99.5th |percentile|."""
    a = attribution.detach().double().cpu()
    a = a.sum(0) if a.ndim == 3 else a
    scale = torch.quantile(a.abs().flatten(), 0.995)
    return (a / (scale + 1e-12)).clamp(-1, 1).float().numpy()


@torch.no_grad()
def pca_rgb(backbone: Any, images: torch.Tensor) -> np.ndarray:
    """(N, h, w, 3) in [0, 1]: the final patch tokens (``last_hidden_state`` without the prefix
    tokens) of all N images projected on their first three principal components (one PCA over the
    N x h x w tokens, by SVD), each component's sign chosen so its largest projection is positive,
    scaled from its 1st to its 99th percentile."""
    out = backbone(images)
    tokens = out.last_hidden_state[:, int(backbone.num_prefix_tokens):].double().cpu()
    n, p, d = tokens.shape
    h = images.shape[-2] // int(backbone.patch_size)
    w = p // h
    if h * w != p:
        raise ValueError(f"cannot lay {p} patch tokens on a grid of {h} rows")
    flat = tokens.reshape(n * p, d)
    flat = flat - flat.mean(0)
    _, _, v = torch.linalg.svd(flat, full_matrices=False)
    proj = flat @ v[:3].T
    proj = proj * torch.sign(proj.gather(0, proj.abs().argmax(0, keepdim=True)))
    lo, hi = torch.quantile(proj, 0.01, dim=0), torch.quantile(proj, 0.99, dim=0)
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    return rgb.reshape(n, h, w, 3).float().numpy()


def zero_shot_prompts(class_names: Sequence[str] | None, classes: Sequence[int]) -> list[str]:
    return [ZERO_SHOT_TEMPLATE.format(class_names[c]) for c in classes] if class_names else []


def zero_shot_panels(teacher: Any, student: Any, images: torch.Tensor, class_names: Sequence[str] | None,
                     classes: Sequence[int]) -> np.ndarray | None:
    """(N, P, S, S, 4) B-cos images of the student's similarity to each class prompt, or None when
    the teacher has no text tower (not SigLIP, or a vision-only checkpoint) or there are no class
    names. The target is the dot product of the student's image embedding with the prompt's
    normalised text embedding: linear in the embedding, so W(x)x explains it exactly (the logit
    scale and bias SigLIP adds are constants)."""
    from aloe.eval.zeroshot import build_siglip_classifier

    if (getattr(teacher, "family", "") != "siglip" or getattr(teacher, "tokenizer", None) is None
            or not hasattr(teacher.hf_model, "get_text_features") or not class_names):
        return None
    names = [class_names[c] for c in classes]
    text, _, _ = build_siglip_classifier(teacher.hf_model, teacher.tokenizer, names,
                                         [ZERO_SHOT_TEMPLATE], device=images.device)
    out = []
    for j in range(len(names)):
        t = text[:, j].to(images.device)
        e = explain(student, images, lambda o: (o.pooler_output.float() * t).sum(1))
        out.append(np.stack([bcos_rgba(wi, ci) for wi, ci in zip(e.weights, e.image)]))
    return np.stack(out, axis=1)


def _check_arguments(backbones: Sequence[Mapping[str, Any]], methods: Sequence[str], num_images: int) -> None:
    if not backbones:
        raise ValueError("explanation panels need at least one backbone")
    if "bcos" in methods:
        raise ValueError("methods are post-hoc methods on the teacher; the B-cos column is always shown")
    for i, entry in enumerate(backbones):
        missing = [k for k in BACKBONE_KEYS if k not in entry]
        if missing:
            raise ValueError(f"backbones[{i}] ({entry.get('name', '?')}) lacks keys {missing}; needs {BACKBONE_KEYS}")
        extra = set(entry.get("methods", methods)) - set(methods)
        if extra:
            raise ValueError(f"backbones[{i}] ({entry['name']}) methods {sorted(extra)} are not in methods "
                             f"{list(methods)}")
        if "/" in entry["name"]:
            raise ValueError(f"backbones[{i}] name {entry['name']!r} must not contain '/' (tensor names)")
    if len({e["name"] for e in backbones}) != len(backbones):
        raise ValueError(f"backbone names repeat: {[e['name'] for e in backbones]}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")


def _classifier(path: str, kind: str, head: str) -> ProbedClassifier:
    return ProbedClassifier(load_backbone(path, kind), *load_head(head, path)).eval()


def explain_backbone(teacher: ProbedClassifier, student: ProbedClassifier, images: torch.Tensor,
                     methods: Sequence[str], method_options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Predictions and panels of one backbone: the student's B-cos RGBA images, the teacher's heat maps."""
    from aloe.eval.attributions import make_attribution_fn  # captum is slow to import

    with torch.no_grad():
        s_pred, t_pred = student(images).argmax(1), teacher(images).argmax(1)
    w = student.weight[:, s_pred].T  # (N, D): the predicted class's head column; its bias is constant
    e = explain(student.backbone, images, lambda o: (o.pooler_output.float() * w).sum(1))
    maps = {}
    for m in methods:
        attribute = make_attribution_fn(m, teacher, **dict(method_options.get(m, {})))
        maps[m] = np.stack([heat_map(a) for a in attribute(images, t_pred)])
    return {
        "student_pred": s_pred.tolist(), "teacher_pred": t_pred.tolist(),
        "bcos": np.stack([bcos_rgba(wi, ci) for wi, ci in zip(e.weights, e.image)]), "maps": maps,
        "pca": {"teacher": pca_rgb(teacher.backbone, images), "aloe": pca_rgb(student.backbone, images)},
    }


def run_explanation_panels(
    out: str | os.PathLike,
    *,
    panels_out: str | os.PathLike,
    backbones: Sequence[Mapping[str, Any]],
    dataset_dir: str,
    dataset: str,
    split: str = "test",
    num_images: int = 4,
    seed: int = 0,
    methods: Sequence[str] = ("ig",),
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Compute the panels; write the tensors to ``panels_out`` and the record to ``out``; return the record.

    ``backbones``: dicts with ``name`` (the config's teacher name), ``teacher_path`` (for
    ``load_teacher``), ``teacher_head``, ``student_path`` (ALOE student dir), ``student_head``
    (the linear-probe heads ``results/metrics/linear_probe/{name}/{teacher,aloe}/{dataset}.head.safetensors``),
    optionally ``methods`` (a subset of ``methods`` for this backbone, e.g. no CheferCAM for
    SigLIP; the grid shows "n/a" for the others) and ``label``. ``methods``: post-hoc methods of
    ``aloe.eval.attributions`` on the teacher; ``method_options``: method -> keyword options.
    """
    _check_arguments(backbones, methods, num_images)
    device = resolve_device(device)
    method_options = {m: dict(o) for m, o in (method_options or {}).items()}
    meta = EvalLoader(dataset_dir, split, image_size=8, batch_size=1)
    if meta.task != "classification":
        raise ValueError(f"{dataset_dir}: explanation grid needs a classification dataset, task is {meta.task!r}")

    tensors: dict[str, torch.Tensor] = {}
    rows, keys, labels, inputs = [], None, None, {}
    for entry in backbones:
        teacher = _classifier(entry["teacher_path"], "teacher", entry["teacher_head"]).to(device)
        student = _classifier(entry["student_path"], "student", entry["student_head"]).to(device)
        size = int(teacher.backbone.image_size)
        if keys is None:
            pixels, labels, keys = pick_images(dataset_dir, split, size, num_images, seed)
            inputs[size] = pixels
        elif size not in inputs:
            inputs[size] = images_by_key(dataset_dir, split, size, keys)
        own = list(entry.get("methods", methods))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            r = explain_backbone(teacher, student, inputs[size].to(device), own, method_options)
        name = entry["name"]
        tensors[f"{name}/input"] = inputs[size].float().clone()  # its own copy: safetensors refuses shared memory
        tensors[f"{name}/bcos"] = torch.from_numpy(np.ascontiguousarray(r["bcos"]))
        tensors.update({f"{name}/{m}": torch.from_numpy(np.ascontiguousarray(r["maps"][m])) for m in own})
        tensors.update({f"{name}/pca_{v}": torch.from_numpy(np.ascontiguousarray(a)) for v, a in r["pca"].items()})
        zs = zero_shot_panels(teacher.backbone, student.backbone, inputs[size].to(device), meta.class_names,
                              [int(c) for c in labels])
        if zs is not None:
            tensors[f"{name}/zeroshot"] = torch.from_numpy(np.ascontiguousarray(zs))
        rows.append({
            "name": name, "label": entry.get("label"), "image_size": size, "methods": own,
            "student_pred": r["student_pred"], "teacher_pred": r["teacher_pred"], "zero_shot": zs is not None,
            "teacher_path": str(entry["teacher_path"]), "teacher_head": str(entry["teacher_head"]),
            "teacher_checksum": checkpoint_checksum(entry["teacher_path"]),
            "student_path": str(entry["student_path"]), "student_head": str(entry["student_head"]),
            "student_checksum": checkpoint_checksum(entry["student_path"]),
        })
        del teacher, student

    save_tensors(panels_out, tensors, metadata={"format": PANELS_FORMAT, "dataset": dataset, "split": split})
    record = {
        "format": PANELS_FORMAT, "dataset": dataset, "split": split, "seed": seed, "keys": list(keys),
        "labels": [int(c) for c in labels], "class_names": list(meta.class_names) if meta.class_names else None,
        "methods": list(methods), "method_options": method_options, "backbones": rows,
        "zero_shot_prompts": zero_shot_prompts(meta.class_names, [int(c) for c in labels]),
        "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())},
        "panels_checksum": tensors_checksum([panels_out]), "code_version": code_version(),
    }
    write_json(out, record)
    return record
