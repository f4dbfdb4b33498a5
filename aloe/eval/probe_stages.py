"""The stages on cached features alone: linear probe and k-NN (``workflow/rules/eval.smk``).

Kept apart from ``aloe.eval.stages`` so that their jobs import torch and the probes only: no
transformers, torchvision or data loaders, which cost each of the study's many small probe jobs
seconds of start-up (issue: per-job imports dominating the demo's small stages).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from aloe.device import resolve_device
from aloe.eval.features import load_features, pooled_feature, read_metadata, read_provenance
from aloe.eval.knn import knn_top1
from aloe.eval.linear_probe import DINOV2_AVGPOOLS, DINOV2_N_LAST_BLOCKS, linear_probe, linear_probe_layouts
from aloe.eval.probe_aloe_code import probe_head
from aloe.head_files import head_metadata
from aloe.records import make_record, write_records
from aloe.tensorfile import save_tensors


def train_test_features(train_features: str, test_features: str, dataset: str) -> tuple[dict, dict, dict]:
    """Load a train/test cache pair and check both come from the same backbone and layout."""
    prov = read_provenance(train_features)
    train = load_features(train_features, {"dataset": dataset})
    test = load_features(test_features, {"dataset": dataset, "backbone_checksum": prov["backbone_checksum"],
                                         "preprocessing": prov["preprocessing"], "feature_spec": prov["feature_spec"]})
    if read_provenance(test_features)["split"] == prov["split"]:
        raise ValueError(f"{train_features} and {test_features} are the same split {prov['split']!r}")
    return train, test, prov


def run_linear_probe(
    out: str | os.PathLike,
    *,
    train_features: str,
    test_features: str,
    backbone: str,
    variant: str,
    dataset: str,
    head_out: str | None = None,
    protocol: str = "dinov2",
    lrs: str | Sequence[float] = "dinov2",
    iterations: int = 12500,
    batch_size: int = 1024,
    val_fraction: float = 0.1,
    n_last_blocks: Sequence[int] = DINOV2_N_LAST_BLOCKS,
    avgpool: Sequence[bool] = DINOV2_AVGPOOLS,
    seed: int = 0,
    aloe_code: Mapping[str, Any] | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Linear probe on cached features; writes the ``lp_top1`` record and optionally the head.
    ``protocol``: config ``evaluation.linear_probe.protocol`` (``aloe.eval.linear_probe``); dinov2
    reads ``lrs`` (a named grid such as ``"dinov2"``, or the LRs), ``iterations``, ``batch_size``,
    ``val_fraction`` and the layout grid ``n_last_blocks`` x ``avgpool`` (``linear_probe_layouts``);
    aloe_code reads the ``aloe_code`` block, probes ``pooler_output`` and puts a B-cos head on
    students (``probe_head``). The head file holds the head on ``pooler_output`` (dinov2: the best
    of layout (1, False), which the explanation stages classify with) and records its kind
    (metadata ``head``) for ``load_head``."""
    device = resolve_device(device)
    train, test, prov = train_test_features(train_features, test_features, dataset)
    spec = prov["feature_spec"]
    common = dict(seed=seed, device=device)
    if protocol == "dinov2":
        r, explained = linear_probe_layouts(train["global"], train["labels"], test["global"], test["labels"], spec,
                                            n_last_blocks=n_last_blocks, avgpools=avgpool, lrs=lrs,
                                            iterations=iterations, batch_size=batch_size, val_fraction=val_fraction,
                                            **common)
        extra = {"head_file": {"layout": "last1", "test_top1": explained.test_top1, "best_lr": explained.best_lr}}
    else:
        r = explained = linear_probe(pooled_feature(train, spec), train["labels"], pooled_feature(test, spec),
                                     test["labels"], protocol=protocol, head=probe_head(variant),
                                     aloe_code=dict(aloe_code or {}), **common)
        extra = {}
    if head_out is not None:
        classes = json.loads(read_metadata(train_features).get("extra", "{}")).get("class_names")
        if classes is not None and len(classes) != explained.weight.shape[1]:
            classes = None  # a cache of a subset of classes: the head's columns are not the dataset's names
        save_tensors(head_out, {"weight": explained.weight.contiguous(), "bias": explained.bias.contiguous()},
                     metadata=head_metadata(prov["backbone_checksum"], dataset, explained.head, classes))
    params = {**r.params, "best_lr": r.best_lr, **extra, "feature_spec": spec, "num_test": int(test["labels"].numel()),
              "protocols": {"linear_probe": protocol, "eval_transform": prov["preprocessing"]["transform"]}}
    rec = make_record("lp_top1", r.test_top1, backbone=backbone, variant=variant, dataset=dataset, params=params)
    return write_records(out, [rec])[0]


def run_knn(
    out: str | os.PathLike,
    *,
    train_features: str,
    test_features: str,
    backbone: str,
    variant: str,
    dataset: str,
    protocol: str = "dinov2",
    k: int = 20,
    temperature: float | None = 0.07,
    query_chunk: int = 1024,
    bank_chunk: int = 65536,
    device: str = "auto",
) -> dict[str, Any]:
    """k-NN top-1 of the test features against the train bank (``protocol``: ``aloe.eval.knn``;
    ``aloe_code`` takes no temperature)."""
    device = resolve_device(device)
    train, test, prov = train_test_features(train_features, test_features, dataset)
    weighting = {} if protocol == "aloe_code" else {"temperature": temperature}
    spec = prov["feature_spec"]
    acc = knn_top1(pooled_feature(train, spec), train["labels"], pooled_feature(test, spec), test["labels"], k=k,
                   protocol=protocol,
                   query_chunk=query_chunk, bank_chunk=bank_chunk, device=device, **weighting)
    params = {"protocol": protocol, "k": k, **weighting, "feature_spec": prov["feature_spec"],
              "num_test": int(test["labels"].numel()),
              "protocols": {"knn": protocol, "eval_transform": prov["preprocessing"]["transform"]}}
    rec = make_record("knn_top1", acc, backbone=backbone, variant=variant, dataset=dataset, params=params)
    return write_records(out, [rec])[0]
