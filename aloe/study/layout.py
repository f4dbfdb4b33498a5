"""Where the study's files are, and how backbones and their variants are named.

``study`` is a resolved preset (``aloe.config``); teacher, variant and dataset names are the
workflow's wildcard values.
"""

from __future__ import annotations

from typing import Any, Mapping


def canonical(obj: Any) -> Any:
    """A sorted-key copy. Snakemake compares params as text, so the order of keys in config.yaml
    must not decide whether a stage reruns."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def teacher_source(study: Mapping[str, Any], teacher: str) -> str:
    """What load_teacher() gets: the pipeline's own trained folder, or the hub id / path."""
    source = study["teachers"][teacher]["source"]
    return f"results/teachers/{teacher}/model" if source == "demo" else source


def variant_setting(variant: str) -> str:
    """Backbone variant name -> alignment setting: aloe -> main, aloe_loss-mse -> loss-mse."""
    return "main" if variant == "aloe" else variant.removeprefix("aloe_")


def record_variant(variant: str) -> str:
    """Path-safe variant names -> the record convention of aloe.tables (aloe_loss-mse -> aloe:loss=mse)."""
    if variant.startswith("aloe_"):
        axis, _, setting = variant.removeprefix("aloe_").partition("-")
        return f"aloe:{axis}={setting}"
    return variant


def backbone(study: Mapping[str, Any], teacher: str, variant: str) -> tuple[str, str]:
    """(path, kind) of a backbone as the evaluation stages load it."""
    if variant == "teacher":
        return teacher_source(study, teacher), "teacher"
    return f"results/backbones/{teacher}/{variant}", "student"


def eval_dataset_dir(study: Mapping[str, Any], dataset: str) -> str:
    if study["evaluation"]["datasets"][dataset]["source"] == "synthetic":
        return f"results/world/{dataset}"
    return f"results/eval_data/{dataset}"


def eval_dataset_input(study: Mapping[str, Any], dataset: str) -> str:
    """The file that marks an evaluation dataset as prepared."""
    if study["evaluation"]["datasets"][dataset]["source"] == "synthetic":
        return "results/world/world.json"
    return f"results/eval_data/{dataset}/meta.json"


def feature_file(teacher: str, variant: str, dataset: str, split: str) -> str:
    return f"results/features/{teacher}/{variant}/{dataset}/{split}.safetensors"


def head_file(teacher: str, variant: str, dataset: str) -> str:
    """The linear-probe head on ``pooler_output`` that rule linear_probe writes and the explanation
    stages classify with."""
    return f"results/metrics/linear_probe/{teacher}/{variant}/{dataset}.head.safetensors"


def alignment_set_dir(study: Mapping[str, Any]) -> str:
    """The folder of the alignment set the runs train on (config ``alignment.set``)."""
    return f"results/alignment_sets/{study['alignment']['set']}"


def shards_dir(study: Mapping[str, Any]) -> str:
    return f"{alignment_set_dir(study)}/shards"
