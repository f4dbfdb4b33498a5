"""The one registry of names: evaluation datasets, backbones, zero-shot class-name sets, tables.

Config, workflow, data preparation, tables and tests read these entries; nothing else defines a
dataset name, a backbone's display label or a table name. ``check_study`` checks a config
preset against the registry when the workflow builds its DAG, before any job starts, and names
the config key path of every problem. Standard library only: the Snakefile imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping


@dataclass(frozen=True)
class DatasetEntry:
    label: str  # table column label
    task: str  # classification | dense
    sources: tuple[str, ...]  # config `source` values that can provide it; the first is the config default
    classes: int | None = None  # the real class count (the config default); None = set by the synthetic world
    zero_shot: str | None = None  # where zero-shot class names come from: shipped | world | None
    paper_avg: bool = False  # part of the paper's "Avg." (Table 2, B1)


_LOCAL = ("folder",)  # a local copy in the folder layout (aloe.data.folder_datasets), e.g. a rehearsal

# Paper column order (Table 2 / B1), then NYUv2, then the embedded demo's datasets.
DATASETS: dict[str, DatasetEntry] = {
    "imagenet1k": DatasetEntry("IN1k", "classification", ("manual",), 1000, "shipped", True),
    "caltech101": DatasetEntry("Cal101", "classification", ("torchvision",) + _LOCAL, 101, None, True),
    "flowers102": DatasetEntry("Flowers", "classification", ("torchvision",) + _LOCAL, 102, None, True),
    "food101": DatasetEntry("Food", "classification", ("torchvision",) + _LOCAL, 101, None, True),
    "fgvc_aircraft": DatasetEntry("Aircr", "classification", ("torchvision",) + _LOCAL, 100, None, True),
    "dtd": DatasetEntry("DTD", "classification", ("torchvision",) + _LOCAL, 47, None, True),
    "stanford_cars": DatasetEntry("Cars", "classification", ("manual",), 196, None, True),
    "sun397": DatasetEntry("SUN", "classification", ("torchvision",) + _LOCAL, 397, None, True),
    "cifar10": DatasetEntry("C10", "classification", ("torchvision",) + _LOCAL, 10, "shipped", True),
    "cifar100": DatasetEntry("C100", "classification", ("torchvision",) + _LOCAL, 100, "shipped", True),
    "nyuv2": DatasetEntry("NYUv2", "dense", ("manual",), 0),
    "shapes": DatasetEntry("Shapes", "classification", ("synthetic",), None, "world"),
    "textures": DatasetEntry("Textures", "classification", ("synthetic",), None),
    "digits": DatasetEntry("Digits", "classification", ("synthetic",), 10),
    "depth": DatasetEntry("Depth", "dense", ("synthetic",), 0),
}


@dataclass(frozen=True)
class BackboneEntry:
    label: str  # row label in tables and plots
    family: str  # vit | dinov3 | siglip
    hub_id: str | None = None  # the published checkpoint (paper Table A1); None = trained by the pipeline
    depth: int | None = None  # transformer blocks L of that checkpoint; None = training.num_layers of the config


# Paper row order, then the demo's teachers. Config teachers with these names default to the entry's
# family, hub_id (source) and depth (aloe.config.registry_defaults).
BACKBONES: dict[str, BackboneEntry] = {
    "vit_b16_sup": BackboneEntry("Sup. ViT-B/16", "vit", "google/vit-base-patch16-224", 12),
    "siglip2_b16": BackboneEntry("SigLIP2 ViT-B/16", "siglip", "google/siglip2-base-patch16-224", 12),
    "siglip2_l16": BackboneEntry("SigLIP2 ViT-L/16", "siglip", "google/siglip2-large-patch16-256", 24),
    "siglip2_so400m16": BackboneEntry("SigLIP2 So400m/16", "siglip", "google/siglip2-so400m-patch16-256", 27),
    "siglip2_so400m16_384": BackboneEntry("SigLIP2 So400m/16 (384)", "siglip", "google/siglip2-so400m-patch16-384",
                                          27),
    "dinov3_s16": BackboneEntry("DINOv3 ViT-S/16", "dinov3", "facebook/dinov3-vits16-pretrain-lvd1689m", 12),
    "dinov3_b16": BackboneEntry("DINOv3 ViT-B/16", "dinov3", "facebook/dinov3-vitb16-pretrain-lvd1689m", 12),
    "dinov3_l16": BackboneEntry("DINOv3 ViT-L/16", "dinov3", "facebook/dinov3-vitl16-pretrain-lvd1689m", 24),
    "demo_vit": BackboneEntry("Demo sup. ViT", "vit"),
    "demo_siglip": BackboneEntry("Demo SigLIP", "siglip"),
    "demo_dinov3": BackboneEntry("Demo DINOv3", "dinov3"),
}

# Result tables (aloe.tables.specs holds one TableSpec per name); workflow targets are
# results/tables/<name>.{csv,tex,html}.
TABLE_NAMES = ("table2", "table3a", "table3b", "table4", "tableB1", "tableB2", "tableB3", "tableB4", "tableB5",
               "tableB6", "tableB8")

# Attribution methods of GridPG / deletion; bcos is the students' own W(x)x.
ATTRIBUTION_METHODS = ("cp_lrp", "attnlrp", "ig", "legrad", "chefercam", "lime", "bcos")

# B-cos students (aloe.models.student_config): their families, patch stems and B-cos forms
# (aloe.bcos.linear.FORMS), here so that config code reads them without importing torch.
STUDENT_FAMILIES = ("vit", "dinov3", "siglip")
STUDENT_STEMS = ("linear", "conv")
BCOS_FORMS = ("cosine", "bcosification_code")


class UnknownNameError(ValueError):
    """A config names something the registry does not know, or in a place it cannot go."""


def _known(names: Any) -> str:
    return ", ".join(names)


def study_problems(study: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """Every registry problem of one config preset (``prefix`` = its key, e.g. "paper"), each
    starting with the config key path it concerns."""
    teachers = study["teachers"]
    ev = study["evaluation"]
    datasets = ev["datasets"]
    for name, spec in datasets.items():
        key = f"{prefix}.evaluation.datasets.{name}"
        entry = DATASETS.get(name)
        if entry is None:
            yield f"{key}: unknown evaluation dataset {name!r}; known: {_known(DATASETS)}"
            continue
        if spec["source"] not in entry.sources:
            yield f"{key}.source: {name} cannot come from {spec['source']!r}; possible: {_known(entry.sources)}"
        if entry.classes is not None and spec["classes"] != entry.classes:
            yield f"{key}.classes: {name} has {entry.classes} classes, config says {spec['classes']}"
        if spec["source"] in ("manual",) + _LOCAL and not spec.get("path"):
            yield f"{key}.path: source {spec['source']!r} needs the folder of the data"

    def dataset_ref(key: str, name: str, task: str) -> Iterator[str]:
        if name not in datasets:
            yield f"{prefix}.{key}: {name!r} is not a key of {prefix}.evaluation.datasets ({_known(datasets)})"
        elif name in DATASETS and DATASETS[name].task != task:
            yield f"{prefix}.{key}: {name!r} is a {DATASETS[name].task} dataset, {task} needed here"

    for i, name in enumerate(ev["classification"]):
        yield from dataset_ref(f"evaluation.classification[{i}]", name, "classification")
    for i, name in enumerate(ev["zero_shot"]["datasets"]):
        yield from dataset_ref(f"evaluation.zero_shot.datasets[{i}]", name, "classification")
        if name in DATASETS and DATASETS[name].zero_shot is None:
            have = [n for n, e in DATASETS.items() if e.zero_shot]
            yield (f"{prefix}.evaluation.zero_shot.datasets[{i}]: no class names are shipped for {name!r}; "
                   f"zero-shot can use: {_known(have)}")
    yield from dataset_ref("evaluation.dense.dataset", ev["dense"]["dataset"], "dense")
    for stage in ("gridpg", "deletion"):
        yield from dataset_ref(f"evaluation.{stage}.dataset", ev[stage]["dataset"], "classification")
    yield from dataset_ref("baselines.supervised_dataset", study["baselines"]["supervised_dataset"], "classification")

    for name, spec in teachers.items():
        entry = BACKBONES.get(name)
        if entry is None:
            yield (f"{prefix}.teachers.{name}: no display label for teacher {name!r} in aloe.registry.BACKBONES "
                   f"(known: {_known(BACKBONES)}); add an entry there")
        elif entry.family != spec["family"]:
            yield f"{prefix}.teachers.{name}.family: {name} is a {entry.family} model, config says {spec['family']!r}"

    abl = study["ablations"]
    teacher_lists = {
        "alignment.teachers": study["alignment"]["teachers"], "baselines.teachers": study["baselines"]["teachers"],
        "ablations.depths.teachers": abl["depths"]["teachers"], "ablations.losses.teachers": abl["losses"]["teachers"],
        "ablations.fractions.teachers": abl["fractions"]["teachers"], **{
            f"tables.{k}": v for k, v in study["tables"].items()},
    }
    for key, names in teacher_lists.items():
        for i, name in enumerate(names):
            if name not in teachers:
                yield f"{prefix}.{key}[{i}]: {name!r} is not a key of {prefix}.teachers ({_known(teachers)})"
    synthetic = [f"teachers.{n}" for n, t in teachers.items() if t["source"] == "demo"] + [
        f"alignment_sets.{n}" for n, a in study["alignment_sets"].items() if a["url_list"] == "synthetic"] + [
        f"evaluation.datasets.{n}" for n, d in datasets.items() if d["source"] == "synthetic"]
    if synthetic and "synthetic_world" not in study:
        yield f"{prefix}.synthetic_world: needed by {', '.join(synthetic[:3])} (the synthetic world's sizes)"
    if study["alignment"]["set"] not in study["alignment_sets"]:
        yield (f"{prefix}.alignment.set: {study['alignment']['set']!r} is not a key of {prefix}.alignment_sets "
               f"({_known(study['alignment_sets'])})")
    for i, fraction in enumerate(abl["fractions"]["settings"]):
        if fraction not in study["splits"]["fractions"]:
            yield f"{prefix}.ablations.fractions.settings[{i}]: {fraction} is not in {prefix}.splits.fractions"
    for block in ("alignment", "baselines"):
        batch, micro = study[block]["global_batch"], study[block]["micro_batch"]
        if batch % micro:
            yield f"{prefix}.{block}.global_batch: {batch} is not a multiple of {prefix}.{block}.micro_batch ({micro})"
    for i, method in enumerate(ev["gridpg"]["methods"]):
        if method not in ATTRIBUTION_METHODS:
            yield (f"{prefix}.evaluation.gridpg.methods[{i}]: unknown method {method!r}; "
                   f"known: {_known(ATTRIBUTION_METHODS)}")


def check_study(config: Mapping[str, Any], preset: str | None = None) -> None:
    """Raise :class:`UnknownNameError` listing every problem of ``config[preset]`` (default: the
    selected ``config["preset"]``)."""
    preset = preset or config["preset"]
    problems = list(study_problems(config[preset], preset))
    if problems:
        raise UnknownNameError(f"config preset {preset!r} names things aloe does not know "
                               f"({len(problems)} problem(s)):\n  " + "\n  ".join(problems))
