"""Entry points for the workflow: each takes paths and config values as keyword arguments,
reads cached features or checkpoints, and writes one result-record file (``aloe.records``).

Backbones are loaded by ``aloe.models.backbones.load_backbone``: ``backbone_kind`` "teacher" for a
HF checkpoint (``load_teacher``), "student" for a saved B-cos student (``load_student``), whether
B-cosified or ALOE-aligned; heads by ``aloe.eval.classifier.load_head``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import torch

from aloe.data.eval_loader import EvalLoader, eval_transform
from aloe.data.shards import read_meta
from aloe.device import resolve_device
from aloe.eval.classifier import ProbedClassifier, load_head
from aloe.eval.explanation_panels import run_explanation_panels as _explanation_panels
from aloe.eval.deletion import deletion_curve, deletion_fractions
from aloe.eval.dense import evaluate_dense_probe
from aloe.eval.features import cached_features, read_provenance
from aloe.eval.gridpg import CONFIDENCE, PROTOCOLS, confidence_function, evaluate_gridpg
from aloe.eval.probe_stages import train_test_features
from aloe.eval.zeroshot import build_siglip_classifier, zeroshot_top1
from aloe.models import load_teacher
from aloe.models.backbones import checkpoint_checksum, load_backbone
from aloe.records import MetricUnavailable, make_record, make_unavailable_record, write_records

_log = logging.getLogger(__name__)


def preprocessing_record(backbone: Any, image_size: int, transform: str = "center_crop") -> dict[str, Any]:
    """What turns a stored image into the backbone input (part of the cache provenance); the
    transform is ``aloe.data.eval_loader.eval_transform``'s choice (config ``evaluation.transform``)."""
    rec = {"image_size": int(image_size), "transform": transform, "crop": "largest centred square",
           "resize": "bilinear", "input": "rgb float [0,1]"}
    if transform == "resize":
        rec.update(crop="none (whole image, aspect ratio not kept)", resize="bicubic (antialiased)")
    if transform == "resize_center_crop":
        rec.update(crop="centred square of the resized image", resize="short side to size * 256 / 224, bicubic")
    if hasattr(backbone, "mean"):
        rec.update(mean=list(backbone.mean), std=list(backbone.std))
    return rec


def run_extract_feature_splits(
    outs: dict[str, str | os.PathLike],
    *,
    backbone_path: str,
    backbone_kind: str,
    dataset_dir: str,
    dataset: str,
    image_size: int | None = None,
    batch_size: int = 64,
    last_n: int = 1,
    avgpool: bool = False,
    patch_blocks: Sequence[int] = (),
    transform: str = "auto",
    num_workers: int = 0,
    device: str = "auto",
) -> dict[str, dict[str, Any]]:
    """The feature caches of several splits (split -> path) of one dataset, loading the backbone once.
    ``transform``: config ``evaluation.transform`` (``aloe.data.eval_loader.eval_transform``)."""
    device = resolve_device(device)
    backbone = load_backbone(backbone_path, backbone_kind).to(device)
    size = int(image_size or backbone.image_size)
    checksum = checkpoint_checksum(backbone_path)
    transform = eval_transform(getattr(backbone, "family", ""), read_meta(dataset_dir)["task"], transform)
    if last_n > backbone.num_layers:
        _log.info("%s has %d blocks: its cache holds the class tokens of the last %d, not %d (the linear probe's "
                  "larger n_last_blocks layouts do not exist for it)", backbone_path, backbone.num_layers,
                  backbone.num_layers, last_n)
        last_n = backbone.num_layers
    if last_n > 1 and backbone.num_prefix_tokens == 0:
        _log.info("%s has no class token: its cache holds one block's feature (pooler_output), not %d (the linear "
                  "probe's n_last_blocks layouts above 1 do not exist for it)", backbone_path, last_n)
        last_n = 1
    provenance = {}
    for split, out in outs.items():
        loader = EvalLoader(dataset_dir, split, image_size=size, batch_size=batch_size, num_workers=num_workers,
                            transform=transform)
        cached_features(
            out, backbone, loader, dataset=dataset, split=split,
            preprocessing=preprocessing_record(backbone, size, transform),
            last_n=last_n, avgpool=avgpool, patch_blocks=patch_blocks, device=device, backbone_checksum=checksum,
        )
        if loader.skipped.sizes:  # read now (not an existing cache): its damage is stored with the features
            _log.info(loader.skipped.summary(f"{dataset} {split} split (stored in {out})"))
        provenance[split] = read_provenance(out)
    return provenance


def run_extract_train_test(train_out: str, test_out: str, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Workflow entry point: the train and test feature caches of one (backbone, dataset)."""
    return run_extract_feature_splits({"train": train_out, "test": test_out}, **kwargs)


def run_zeroshot(
    out: str | os.PathLike,
    *,
    text_model_path: str,
    image_encoder_path: str,
    image_encoder_kind: str,
    dataset_dir: str,
    dataset: str,
    split: str,
    templates: Sequence[str],
    backbone: str,
    variant: str,
    template_set: str = "",
    class_names: Sequence[str] | None = None,
    batch_size: int = 64,
    transform: str = "auto",
    device: str = "auto",
) -> dict[str, Any]:
    """Zero-shot top-1: text tower of the SigLIP teacher at ``text_model_path``, image embeddings
    from ``image_encoder_path`` (the teacher itself, or a B-cos student of it), on the view
    ``eval_transform`` picks for config ``evaluation.transform`` (auto: SigLIP's own, the whole image
    resized, bicubic)."""
    device = resolve_device(device)
    text = load_teacher(text_model_path)
    if text.family != "siglip" or text.tokenizer is None or not hasattr(text.hf_model, "get_text_features"):
        raise ValueError(f"zero-shot text_model_path {text_model_path!r} must be a SigLIP checkpoint with tokenizer")
    encoder = load_backbone(image_encoder_path, image_encoder_kind).to(device)
    transform = eval_transform(getattr(encoder, "family", ""), "classification", transform)
    loader = EvalLoader(dataset_dir, split, image_size=encoder.image_size, batch_size=batch_size, transform=transform)
    names = list(class_names or loader.class_names or [])
    if not names:
        raise ValueError(f"{dataset_dir} has no class_names and none were given (config key class_names)")
    w, scale, bias = build_siglip_classifier(
        text.hf_model.to(device), text.tokenizer, names, list(templates), device=device
    )
    acc, n = zeroshot_top1(encoder, ((b.pixels, b.labels) for b in loader), w, scale, bias, device=device)
    params = {"template_set": template_set, "num_templates": len(templates), "num_images": n,
              "skipped": loader.skipped.total, "split": split,
              "preprocessing": preprocessing_record(encoder, encoder.image_size, transform),
              "protocols": {"zero_shot_text": "siglip canonicalized", "zero_shot_image": transform}}
    rec = make_record("zeroshot_top1", acc, backbone=backbone, variant=variant, dataset=dataset, params=params)
    return write_records(out, [rec])[0]


# What the dense records' values are (the Probe3D conventions, aloe.eval.dense_metrics).
DENSE_UNITS = {"depth": "delta: fraction of valid pixels in [0, 1]; rmse: metres",
               "normals": "frac_under: fraction of valid pixels in [0, 1]; rmse_deg: degrees"}


def run_dense_probe(
    out: str | os.PathLike,
    *,
    train_features: str,
    test_features: str,
    task: str,
    backbone: str,
    variant: str,
    dataset: str,
    blocks: Sequence[int] | None = None,
    head: str = "linear",
    epochs: int = 10,
    batch_size: int = 8,
    lr: float = 5e-4,
    seed: int = 0,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Depth or normals probe on cached patch features; one record per metric."""
    device = resolve_device(device)
    train, test, prov = train_test_features(train_features, test_features, dataset)
    blocks = list(prov["feature_spec"]["patch_blocks"] if blocks is None else blocks)
    missing = [b for b in blocks if f"block{b}" not in train]
    if not blocks or missing:
        raise ValueError(f"{train_features} lacks patch features of blocks {missing or blocks} (config patch_blocks)")
    cat = lambda f: torch.cat([f[f"block{b}"] for b in blocks], dim=1)  # noqa: E731
    target = "depth" if task == "depth" else "normal"
    depths = {} if task == "depth" else {"train_depth": train["depth"], "test_depth": test["depth"]}
    metrics = evaluate_dense_probe(cat(train), train[target], cat(test), test[target], task, **depths,
                                   head=head, num_blocks=len(blocks), epochs=epochs, batch_size=batch_size, lr=lr,
                                   seed=seed, device=device)
    params = {"task": task, "blocks": blocks, "head": head, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "seed": seed, "units": DENSE_UNITS[task], "aggregation": "per image, mean over images",
              "protocols": {"dense_head": head, "dense_metrics": "probe3d per image"}}
    recs = [make_record(f"{task}_{name}", v, backbone=backbone, variant=variant, dataset=dataset, params=params)
            for name, v in metrics.items()]
    return write_records(out, recs)


def _load_images(dataset_dir: str, split: str, image_size: int, max_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys, n = [], [], 0
    for batch in EvalLoader(dataset_dir, split, image_size=image_size, batch_size=64):
        xs.append(batch.pixels)
        ys.append(batch.labels)
        n += len(batch.labels)
        if n >= max_images:
            break
    if not xs:
        raise ValueError(f"{dataset_dir} split {split!r} has no images")
    return torch.cat(xs)[:max_images], torch.cat(ys)[:max_images]


def _explained_setup(backbone_path, backbone_kind, head_path, method, method_options):
    from aloe.eval.attributions import make_attribution_fn  # captum is slow to import; only these stages need it

    model = load_backbone(backbone_path, backbone_kind)
    classifier = ProbedClassifier(model, *load_head(head_path, backbone_path)).eval()
    return model, classifier, make_attribution_fn(method, classifier, **(method_options or {}))


def run_gridpg(
    out: str | os.PathLike,
    *,
    backbone_path: str,
    backbone_kind: str,
    head_path: str,
    dataset_dir: str,
    split: str,
    method: str,
    backbone: str,
    variant: str,
    dataset: str,
    threshold: float = 0.5,
    num_grids: int = 100,
    max_images: int = 2000,
    seed: int = 0,
    method_options: dict[str, Any] | None = None,
    gate: Sequence[Mapping[str, str]] = (),
    protocol: str = "resize",
) -> dict[str, Any]:
    """GridPG of ``method`` on grids drawn from the images that this classifier and every ``gate``
    classifier (the other compared models, each ``{"variant", "backbone_path", "backbone_kind",
    "head_path"}``) classify confidently and correctly: one grid set for all of them
    (``aloe.eval.gridpg``). ``protocol`` resize: grids resized to the backbone's native image size,
    softmax confidence; sliding_window (the ALOE authors'): grids at twice the native size explained
    in native-size windows of stride half a cell, overlaps averaged, sigmoid confidence for B-cos
    heads and softmax for linear ones. ``threshold``: the protocol's confidence threshold (config
    ``evaluation.gridpg.threshold`` or ``sliding_threshold``, ``aloe.study.eval_plan.gridpg_kwargs``). The
    record's ``params.protocols.gridpg`` names the protocol, ``params.threshold`` the threshold used
    and ``params.confidence`` each compared variant's confidence function. When the data cannot
    give a score (``MetricUnavailable``, e.g. confident images of fewer than 4 classes) the record
    says so: value null, status "unavailable", the reason and its counts."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"gridpg protocol must be one of {PROTOCOLS}, got {protocol!r}")
    model, classifier, attribute = _explained_setup(backbone_path, backbone_kind, head_path, method, method_options)
    gates = [ProbedClassifier(m, *load_head(g["head_path"], g["backbone_path"])).eval()
             for g in gate for m in [load_backbone(g["backbone_path"], g["backbone_kind"])]]
    for g, m in zip(gate, gates):
        if m.backbone.image_size != model.image_size:
            raise ValueError(f"gridpg gate {g['variant']} takes {m.backbone.image_size} px images, "
                             f"{backbone}/{variant} {model.image_size} px: the grid set cannot be shared")
    images, labels = _load_images(dataset_dir, split, model.image_size, max_images)
    confidence = {v: confidence_function(c, CONFIDENCE[protocol])
                  for v, c in zip([variant, *(g["variant"] for g in gate)], [classifier, *gates])}
    params = {"method": method, "method_options": dict(method_options or {}), "threshold": threshold,
              "confidence": confidence, "num_grids": num_grids, "seed": seed, "split": split,
              "num_images": len(images), "gated_by": [g["variant"] for g in gate], "protocols": {"gridpg": protocol}}
    ids = dict(backbone=backbone, variant=variant, dataset=dataset)
    try:
        r = evaluate_gridpg(classifier, attribute, images, labels, threshold=threshold, num_grids=num_grids,
                            seed=seed, grid_size=model.image_size if protocol == "resize" else None, gate=gates,
                            protocol=protocol)
    except MetricUnavailable as err:
        _log.warning("gridpg of %s/%s (%s) on %s is unavailable: %s", backbone, variant, method, dataset, err.reason)
        return write_records(out, [make_unavailable_record("gridpg", err, **ids, params=params)])[0]
    params.update(num_grids=r.num_grids, cells_scored=r.count, cells_zero_mass=r.zero_mass, grid_set=r.grid_set,
                  grid_candidates=r.candidates, grid_size=r.grid_size, windows_per_cell=r.windows)
    return write_records(out, [make_record("gridpg", r.mean, **ids, params=params)])[0]


def run_deletion(
    out: str | os.PathLike,
    *,
    backbone_path: str,
    backbone_kind: str,
    head_path: str,
    dataset_dir: str,
    split: str,
    method: str,
    backbone: str,
    variant: str,
    dataset: str,
    block: int = 16,
    max_fraction: float = 0.8,
    steps: int = 9,
    max_images: int = 500,
    batch_size: int = 32,
    method_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pixel-deletion area for the predicted class; the curve goes into the record's params."""
    model, classifier, attribute = _explained_setup(backbone_path, backbone_kind, head_path, method, method_options)
    images, _ = _load_images(dataset_dir, split, model.image_size, max_images)
    fractions = deletion_fractions(max_fraction, steps)
    curves = []
    for s in range(0, len(images), batch_size):
        x = images[s : s + batch_size]
        with torch.no_grad():
            pred = classifier(x).argmax(dim=1)
        res = deletion_curve(classifier, x, pred, attribute(x, pred), block=block, fractions=fractions)
        curves.append(torch.tensor(res.curve) * len(x))
    curve = (torch.stack(curves).sum(0) / len(images)).tolist()
    area = float(torch.trapezoid(torch.tensor(curve), torch.tensor(fractions)))
    params = {"method": method, "method_options": dict(method_options or {}), "block": block,
              "fractions": fractions, "curve": curve, "num_images": len(images), "split": split,
              "protocols": {"deletion": f"{block} px blocks zeroed"}}
    rec = make_record("deletion_area", area, backbone=backbone, variant=variant, dataset=dataset, params=params)
    return write_records(out, [rec])[0]


# The stages of workflow/rules/eval.smk: rule X calls run_X (the others are defined above).
run_features = run_extract_train_test
run_zero_shot = run_zeroshot
run_explanation_panels = _explanation_panels
