"""The records each output of the study reads: the paper's tables, the two plots, the report's
explanation grid and the data-quality table.

Metric records are ``results/metrics/<kind>/<teacher>/<variant>/<dataset or task or
method>.json``; a variant is ``teacher``, ``bcosification`` (teachers of ``baselines.teachers``),
``aloe`` (the main recipe) or ``aloe_<axis>-<setting>`` (an ablation's backbone).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from aloe.registry import TABLE_NAMES
from aloe.study.alignment_plan import alignment_settings
from aloe.study.layout import (alignment_set_dir, eval_dataset_input, feature_file, head_file, shards_dir,
                               teacher_source, variant_setting)

Variants = Callable[[str], list[str]]


def classification(study: Mapping[str, Any]) -> list[str]:
    return study["evaluation"]["classification"]


def first_dataset(study: Mapping[str, Any]) -> str:
    """The first classification dataset: the one of the single-dataset tables and plots."""
    return classification(study)[0]


def siglip_teachers(study: Mapping[str, Any]) -> list[str]:
    """The aligned teachers with a text tower (SigLIP2): those with zero-shot records."""
    return [t for t in study["alignment"]["teachers"] if study["teachers"][t]["family"] == "siglip"]


def main_variants(study: Mapping[str, Any], teacher: str) -> list[str]:
    """A teacher's backbones in the main tables: itself, its baseline (if it has one), ALOE."""
    baseline = ["bcosification"] if teacher in study["baselines"]["teachers"] else []
    return ["teacher"] + baseline + ["aloe"]


def metric_files(kind: str, teachers: Iterable[str], datasets: Iterable[str], variants: Variants) -> list[str]:
    return [f"results/metrics/{kind}/{t}/{v}/{d}.json" for t in teachers for v in variants(t) for d in datasets]


def ablation_variants(axis: str, names: Iterable[str]) -> Variants:
    return lambda teacher: [f"aloe_{axis}-{n}" for n in names]


# Post-hoc attribution methods that need a [CLS] token; SigLIP has none (LeGrad handles SigLIP).
NEEDS_CLS = {"chefercam"}


def explain_methods(study: Mapping[str, Any]) -> list[str]:
    """The post-hoc methods run on the teachers: GridPG's methods but bcos, the students' own W(x)x."""
    return [m for m in study["evaluation"]["gridpg"]["methods"] if m != "bcos"]


def teacher_methods(study: Mapping[str, Any], teacher: str) -> list[str]:
    """The post-hoc methods a teacher gets records for: a SigLIP teacher none that needs [CLS]."""
    siglip = study["teachers"][teacher]["family"] == "siglip"
    return [m for m in explain_methods(study) if not (m in NEEDS_CLS and siglip)]


# The models GridPG compares per backbone (Table B6): the teacher (post-hoc methods) and its ALOE
# student (W(x)x). Every record of a backbone is scored on the grids both classify confidently.
GRIDPG_COMPARED = ("teacher", "aloe")


def gridpg_gate(variant: str) -> list[str]:
    """The other compared variants whose confidence also gates the grid images of ``variant``."""
    return [v for v in GRIDPG_COMPARED if v != variant]


def gridpg_files(study: Mapping[str, Any], teachers: Iterable[str]) -> list[str]:
    files = []
    for t in teachers:
        files += [f"results/metrics/gridpg/{t}/teacher/{m}.json" for m in teacher_methods(study, t)]
        files += [f"results/metrics/gridpg/{t}/aloe/bcos.json"]
    return files


def table_plan(study: Mapping[str, Any], table: str) -> tuple[list[str], dict[str, Any]]:
    """(record files, build_table keyword arguments) of one table."""
    cls, first = classification(study), classification(study)[:1]
    main, dense, siglip = study["tables"]["main"], study["tables"]["depth"], siglip_teachers(study)
    zs = [f"{d}/openclip_imagenet" for d in study["evaluation"]["zero_shot"]["datasets"]]
    aligned = study["alignment"]["teachers"]
    depths, losses = study["ablations"]["depths"], study["ablations"]["losses"]
    main_v = lambda t: main_variants(study, t)  # noqa: E731
    teacher_aloe = lambda t: ["teacher", "aloe"]  # noqa: E731
    main_siglip = [t for t in main if t in siglip]
    plans = {
        "table2": (metric_files("linear_probe", main, cls, main_v), dict(backbones=main, datasets=cls)),
        "table3a": (metric_files("knn", main, cls, main_v), dict(backbones=main, datasets=cls)),
        "table3b": (metric_files("zero_shot", main_siglip, zs, main_v),
                    dict(backbones=main_siglip, select={"template_set": "openclip_imagenet"})),
        "table4": (metric_files("linear_probe", depths["teachers"], cls,
                                ablation_variants("depths", depths["settings"])),
                   dict(backbones=depths["teachers"], datasets=cls)),
        "tableB1": (metric_files("linear_probe", aligned, cls, main_v), dict(backbones=aligned, datasets=cls)),
        "tableB2": (metric_files("knn", aligned, cls, main_v), dict(backbones=aligned, datasets=cls)),
        "tableB3": (metric_files("zero_shot", siglip, zs, main_v),
                    dict(backbones=siglip, select={"template_set": "openclip_imagenet"})),
        "tableB4": (metric_files("dense", dense, ["depth"], main_v), dict(backbones=dense)),
        "tableB5": (metric_files("dense", dense, ["normals"], main_v), dict(backbones=dense)),
        "tableB6": (metric_files("linear_probe", main, first, teacher_aloe)
                    + metric_files("knn", main, first, teacher_aloe) + gridpg_files(study, main),
                    dict(backbones=main, datasets=first)),
        "tableB8": (metric_files("linear_probe", losses["teachers"], first,
                                 ablation_variants("loss", losses["settings"])),
                    dict(backbones=losses["teachers"], datasets=first)),
    }
    return plans[table]


def fig9_records(study: Mapping[str, Any]) -> list[str]:
    """Fig. 9, data efficiency: the first dataset's LP records of the data-fraction ablation, and
    those of the teacher and its B-cosification baseline (the figure's reference lines)."""
    fractions = study["ablations"]["fractions"]
    names = [f"{f:g}" for f in fractions["settings"]]
    first = classification(study)[:1]
    references = lambda t: [v for v in main_variants(study, t) if v != "aloe"]  # noqa: E731
    return (metric_files("linear_probe", fractions["teachers"], first, ablation_variants("data", names))
            + metric_files("linear_probe", fractions["teachers"], first, references))


def fig1_records(study: Mapping[str, Any]) -> list[str]:
    """Fig. 1, GridPG against accuracy: the main teachers' and students' LP and GridPG records."""
    main = study["tables"]["main"]
    return (metric_files("linear_probe", main, classification(study)[:1], lambda t: ["teacher", "aloe"])
            + gridpg_files(study, main))


def figB3_records(study: Mapping[str, Any]) -> list[str]:
    """Fig. B3, pixel deletion: each main teacher's post-hoc methods and its ALOE student's W(x)x."""
    files = []
    for t in study["tables"]["main"]:
        files += [f"results/metrics/deletion/{t}/teacher/{m}.json" for m in teacher_methods(study, t)]
        files += [f"results/metrics/deletion/{t}/aloe/bcos.json"]
    return files


def explanation_backbones(study: Mapping[str, Any], dataset: str) -> list[dict[str, Any]]:
    """The rows of the report's explanation grid: each main teacher and its ALOE student, their
    linear-probe heads on ``dataset``, and the teacher's post-hoc methods."""
    return [
        dict(
            name=t,
            teacher_path=teacher_source(study, t),
            teacher_head=head_file(t, "teacher", dataset),
            student_path=f"results/backbones/{t}/aloe",
            student_head=head_file(t, "aloe", dataset),
            methods=teacher_methods(study, t),
        )
        for t in study["tables"]["main"]
    ]


def explanation_inputs(study: Mapping[str, Any], dataset: str) -> list[str]:
    files = [eval_dataset_input(study, dataset)]
    for b in explanation_backbones(study, dataset):
        files += [f"results/teachers/{b['name']}/teacher.json", b["student_path"], b["teacher_head"],
                  b["student_head"]]
    return files


# metric kind -> the evaluation block whose dataset its features come from (None: the record's own)
FEATURE_KINDS = {"linear_probe": None, "knn": None, "dense": "dense", "gridpg": "gridpg", "deletion": "deletion"}


def evaluated(study: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(kind, teacher, variant, dataset or task/method) of every metric record the tables and plots
    read, and the explanation grid's linear-probe heads."""
    first = first_dataset(study)
    paths = fig9_records(study) + fig1_records(study) + figB3_records(study)
    for table in TABLE_NAMES:
        paths += table_plan(study, table)[0]
    found = {tuple(p.removesuffix(".json").split("/")[2:6]) for p in paths}
    for b in explanation_backbones(study, first):
        found |= {("linear_probe", b["name"], v, first) for v in ("teacher", "aloe")}
    return sorted(found)


def data_quality_records(study: Mapping[str, Any]) -> dict[str, list[str]]:
    """The records that count damaged samples, of every stage the tables and plots depend on: the
    alignment set's download summary, its subsets, the alignment and baseline runs, and the
    feature caches."""
    settings, aset = alignment_settings(study), alignment_set_dir(study)
    features, runs, fractions = set(), set(), set()
    for kind, teacher, variant, what in evaluated(study):
        if kind in FEATURE_KINDS:  # dense / gridpg: the dataset of that evaluation
            fixed = FEATURE_KINDS[kind]
            dataset = what if fixed is None else study["evaluation"][fixed]["dataset"]
            features |= {feature_file(teacher, variant, dataset, s) for s in ("train", "test")}
        if variant == "bcosification":
            runs.add(f"results/align/{teacher}/bcosification/result.json")
        elif variant != "teacher":
            setting = variant_setting(variant)
            fractions.add(settings[setting]["overrides"].get("fraction", 1.0))
            runs |= {f"results/align/{teacher}/{setting}/lr{lr:g}/result.json" for lr in settings[setting]["lrs"]}
    # every ALOE run reads the held-out subset, and a fraction below 1 its own subset (run_inputs)
    subsets = ["val"] * bool(fractions) + [f"{f:g}" for f in sorted(fractions) if f < 1]
    return dict(
        downloads=[f"{shards_dir(study)}/summary.json"],
        subsets=[f"{aset}/subset_{s}/subset.json" for s in subsets],
        runs=sorted(runs),
        features=sorted(features),
    )
