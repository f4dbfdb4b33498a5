# Helpers of the evaluation, table and report rules (lint: functions live in common modules).
from aloe.depths import dense_blocks as resolve_dense_blocks


# ---- used by eval.smk ----
def record_variant(variant):
    """Path-safe variant names -> the record convention of aloe.tables (aloe_loss-mse -> aloe:loss=mse)."""
    if variant.startswith("aloe_"):
        axis, _, setting = variant.removeprefix("aloe_").partition("-")
        return f"aloe:{axis}={setting}"
    return variant


def dense_blocks(teacher):
    """0-based blocks whose patch tokens feed the dense probes (aloe.depths.dense_blocks)."""
    return resolve_dense_blocks(EVAL["dense"]["blocks"], TEACHERS[teacher]["depth"])


def feature_file(teacher, variant, dataset, split):
    return f"results/features/{teacher}/{variant}/{dataset}/{split}.safetensors"


def zero_shot_templates(name):
    from aloe.data.zero_shot import load_templates

    return load_templates(name)


def explained_inputs(w, dataset):
    return [
        backbone_input(w),
        f"results/metrics/linear_probe/{w.teacher}/{w.variant}/{dataset}.head.safetensors",
        eval_dataset_input(dataset),
    ]


def explained_kwargs(w, dataset):
    return dict(
        backbone_path=backbone(w.teacher, w.variant)[0],
        backbone_kind=backbone(w.teacher, w.variant)[1],
        head_path=f"results/metrics/linear_probe/{w.teacher}/{w.variant}/{dataset}.head.safetensors",
        dataset_dir=eval_dataset_dir(dataset),
        split="test",
        method=w.method,
        backbone=w.teacher,
        variant=record_variant(w.variant),
        dataset=dataset,
    )


# ---- used by tables.smk ----
CLASSIFICATION = EVAL["classification"]


FIRST = CLASSIFICATION[:1]


BASELINE = set(STUDY["baselines"]["teachers"])


SIGLIP = [t for t in ALIGN["teachers"] if TEACHERS[t]["family"] == "siglip"]


def main_variants(teacher):
    return ["teacher"] + (["bcosification"] if teacher in BASELINE else []) + ["aloe"]


def metric_files(kind, teachers, datasets, variants=main_variants):
    return [
        f"results/metrics/{kind}/{t}/{v}/{d}.json"
        for t in teachers
        for v in variants(t)
        for d in datasets
    ]


def ablation_variants(axis, names):
    return lambda teacher: [f"aloe_{axis}-{n}" for n in names]


def gridpg_files(teachers):
    files = []
    for t in teachers:
        files += [
            f"results/metrics/gridpg/{t}/teacher/{m}.json"
            for m in EVAL["gridpg"]["methods"]
            if m != "bcos"
            and not (m == "chefercam" and TEACHERS[t]["family"] == "siglip")
        ]
        files += [f"results/metrics/gridpg/{t}/aloe/bcos.json"]
    return files


def table_plan(table):
    """(record files, build_table keyword arguments) of one table."""
    main = STUDY["tables"]["main"]
    zs = [f"{d}/openclip_imagenet" for d in EVAL["zero_shot"]["datasets"]]
    dense = STUDY["tables"]["depth"]
    depths = ABLATIONS["depths"]
    losses = ABLATIONS["losses"]
    plans = {
        "table2": (
            metric_files("linear_probe", main, CLASSIFICATION),
            dict(backbones=main, datasets=CLASSIFICATION),
        ),
        "table3a": (
            metric_files("knn", main, CLASSIFICATION),
            dict(backbones=main, datasets=CLASSIFICATION),
        ),
        "table3b": (
            metric_files("zero_shot", [t for t in main if t in SIGLIP], zs),
            dict(
                backbones=[t for t in main if t in SIGLIP],
                select={"template_set": "openclip_imagenet"},
            ),
        ),
        "table4": (
            metric_files(
                "linear_probe",
                depths["teachers"],
                CLASSIFICATION,
                ablation_variants("depths", depths["settings"]),
            ),
            dict(backbones=depths["teachers"], datasets=CLASSIFICATION),
        ),
        "tableB1": (
            metric_files("linear_probe", ALIGN["teachers"], CLASSIFICATION),
            dict(backbones=ALIGN["teachers"], datasets=CLASSIFICATION),
        ),
        "tableB2": (
            metric_files("knn", ALIGN["teachers"], CLASSIFICATION),
            dict(backbones=ALIGN["teachers"], datasets=CLASSIFICATION),
        ),
        "tableB3": (
            metric_files("zero_shot", SIGLIP, zs),
            dict(backbones=SIGLIP, select={"template_set": "openclip_imagenet"}),
        ),
        "tableB4": (metric_files("dense", dense, ["depth"]), dict(backbones=dense)),
        "tableB5": (metric_files("dense", dense, ["normals"]), dict(backbones=dense)),
        "tableB6": (
            metric_files("linear_probe", main, FIRST, lambda t: ["teacher", "aloe"])
            + metric_files("knn", main, FIRST, lambda t: ["teacher", "aloe"])
            + gridpg_files(main),
            dict(backbones=main, datasets=FIRST),
        ),
        "tableB8": (
            metric_files(
                "linear_probe",
                losses["teachers"],
                FIRST,
                ablation_variants("loss", losses["settings"]),
            ),
            dict(backbones=losses["teachers"], datasets=FIRST),
        ),
    }
    return plans[table]


TABLES = list(TABLE_NAMES)


def fig9_records():
    names = [f"{f:g}" for f in ABLATIONS["fractions"]["settings"]]
    return metric_files(
        "linear_probe",
        ABLATIONS["fractions"]["teachers"],
        FIRST,
        ablation_variants("data", names),
    )


def fig1_records():
    main = STUDY["tables"]["main"]
    return metric_files(
        "linear_probe", main, FIRST, lambda t: ["teacher", "aloe"]
    ) + gridpg_files(main)


# ---- used by tables.smk (data quality) ----
FEATURE_KINDS = {
    "linear_probe": None,
    "knn": None,
    "dense": "dense",
    "gridpg": "gridpg",
}


def evaluated():
    """(kind, teacher, variant, dataset or task/method) of every metric record the tables and plots
    read, and the explanation grid's linear-probe heads."""
    paths = fig9_records() + fig1_records()
    for table in TABLES:
        paths += table_plan(table)[0]
    found = {tuple(p.removesuffix(".json").split("/")[2:6]) for p in paths}
    for b in explanation_backbones(FIRST[0]):
        found |= {("linear_probe", b["name"], v, FIRST[0]) for v in ("teacher", "aloe")}
    return sorted(found)


def data_quality_records():
    """The records that count damaged samples, of every stage the tables and plots depend on: the
    alignment set's download summary, its subsets, the alignment and baseline runs, and the
    feature caches."""
    features, runs, fractions = set(), set(), set()
    for kind, teacher, variant, what in evaluated():
        if kind in FEATURE_KINDS:  # dense / gridpg: the dataset of that evaluation
            fixed = FEATURE_KINDS[kind]
            dataset = what if fixed is None else EVAL[fixed]["dataset"]
            features |= {
                feature_file(teacher, variant, dataset, s) for s in ("train", "test")
            }
        if variant == "bcosification":
            runs.add(f"results/align/{teacher}/bcosification/result.json")
        elif variant != "teacher":
            setting = variant_setting(variant)
            fractions.add(SETTINGS[setting]["overrides"].get("fraction", 1.0))
            runs |= {
                f"results/align/{teacher}/{setting}/lr{lr:g}/result.json"
                for lr in SETTINGS[setting]["lrs"]
            }
    # every ALOE run reads the held-out subset, and a fraction below 1 its own subset (run_inputs)
    subsets = ["val"] * bool(fractions) + [f"{f:g}" for f in sorted(fractions) if f < 1]
    return dict(
        downloads=[f"{SHARDS}/summary.json"],
        subsets=[
            f"results/alignment_sets/{ASET}/subset_{s}/subset.json" for s in subsets
        ],
        runs=sorted(runs),
        features=sorted(features),
    )


# ---- used by tables.smk (report) ----
REPORT = "../report"


# ---- used by eval.smk (explanation_panels) and tables.smk (explanation_grid) ----
# the panels of the report's explanation grid: their record (JSON) and their images and maps
PANELS_RECORD = "results/explanations/panels.json"
PANELS_TENSORS = "results/explanations/panels.safetensors"
# post-hoc methods shown on the teachers: the GridPG methods (bcos is the student's own column);
# CheferCAM needs a [CLS] token, so SigLIP rows show it as n/a (LeGrad handles SigLIP).
EXPLAIN_METHODS = [m for m in EVAL["gridpg"]["methods"] if m != "bcos"]
NO_CLS = {"chefercam"}


def explanation_backbones(dataset):
    return [
        dict(
            name=t,
            teacher_path=teacher_source(t),
            teacher_head=f"results/metrics/linear_probe/{t}/teacher/{dataset}.head.safetensors",
            student_path=f"results/backbones/{t}/aloe",
            student_head=f"results/metrics/linear_probe/{t}/aloe/{dataset}.head.safetensors",
            methods=[
                m
                for m in EXPLAIN_METHODS
                if not (m in NO_CLS and TEACHERS[t]["family"] == "siglip")
            ],
        )
        for t in STUDY["tables"]["main"]
    ]


def explanation_inputs(dataset):
    files = [eval_dataset_input(dataset)]
    for b in explanation_backbones(dataset):
        files += [
            f"results/teachers/{b['name']}/teacher.json",
            b["student_path"],
            b["teacher_head"],
            b["student_head"],
        ]
    return files
