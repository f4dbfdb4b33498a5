# Shared helpers: the selected study block, naming of backbones and alignment runs, launch blocks.
import os

STUDY = config[config["preset"]]
TEACHERS = STUDY["teachers"]
EVAL = STUDY["evaluation"]
ALIGN = STUDY["alignment"]
ABLATIONS = STUDY["ablations"]
STAGE = "../scripts/stage.py"


def launch_block(stage):
    """The launcher settings of one stage: its resources plus the cluster-wide keys."""
    resources = dict(STUDY["cluster"], **STUDY["resources"][stage])
    return {
        "resources": resources,
        "executor": STUDY["launcher"]["executor"],
        "detach_on_interrupt": STUDY["launcher"]["detach_on_interrupt"],
        "log_dir": f"results/jobs/{stage}",
    }


def teacher_source(teacher):
    """What load_teacher() gets: the pipeline's own trained folder, or the hub id / path."""
    source = TEACHERS[teacher]["source"]
    return f"results/teachers/{teacher}/model" if source == "demo" else source


# Alignment settings: "main" is the paper's default recipe with the LR sweep; the ablations
# change one thing each and train at a single LR.
def alignment_settings():
    settings = {
        "main": {"teachers": ALIGN["teachers"], "lrs": ALIGN["lrs"], "overrides": {}}
    }
    abl = ABLATIONS
    single = {"lrs": [abl["lr"]]}
    for name, depths in abl["depths"]["settings"].items():
        settings[f"depths-{name}"] = dict(
            single,
            teachers=abl["depths"]["teachers"],
            overrides={"depths": depths, "total_steps": abl["total_steps"]},
        )
    for loss in abl["losses"]["settings"]:
        settings[f"loss-{loss}"] = dict(
            single,
            teachers=abl["losses"]["teachers"],
            overrides={"loss": loss, "total_steps": abl["total_steps"]},
        )
    for fraction in abl["fractions"]["settings"]:
        settings[f"data-{fraction:g}"] = dict(
            single,
            teachers=abl["fractions"]["teachers"],
            overrides={"fraction": fraction, "total_steps": abl["total_steps"]},
        )
    return settings


SETTINGS = alignment_settings()


def variant_setting(variant):
    """Backbone variant name -> alignment setting: aloe -> main, aloe_loss-mse -> loss-mse."""
    return "main" if variant == "aloe" else variant.removeprefix("aloe_")


def backbone(teacher, variant):
    """(path, kind) of a backbone as the evaluation stages load it."""
    if variant == "teacher":
        return teacher_source(teacher), "teacher"
    return f"results/backbones/{teacher}/{variant}", "student"


def backbone_input(wildcards):
    if wildcards.variant == "teacher":
        return f"results/teachers/{wildcards.teacher}/teacher.json"
    return f"results/backbones/{wildcards.teacher}/{wildcards.variant}"


def eval_dataset_dir(dataset):
    if EVAL["datasets"][dataset]["source"] == "synthetic":
        return f"results/world/{dataset}"
    return f"results/eval_data/{dataset}"


def eval_dataset_input(dataset):
    if EVAL["datasets"][dataset]["source"] == "synthetic":
        return "results/world/world.json"
    return f"results/eval_data/{dataset}/meta.json"


# ---- used by data.smk ----
def alignment_set_options(name):
    options = dict(STUDY["alignment_sets"][name])
    url_list = options.pop("url_list")
    if url_list == "synthetic":
        return dict(
            world_dir="results/world",
            out_dir=f"results/alignment_sets/{name}/shards",
            **options,
        )
    return dict(
        url_list=url_list, out_dir=f"results/alignment_sets/{name}/shards", **options
    )


def subset_keys_file(aset, subset):
    name = "val.txt" if subset == "val" else f"train_{subset}.txt"
    return f"results/alignment_sets/{aset}/splits/{name}"


# ---- used by align.smk ----
ASET = ALIGN["set"]


SHARDS = f"results/alignment_sets/{ASET}/shards"


def training_keys(**extra):
    keys = (
        "loss",
        "lambda_global",
        "lambda_layers",
        "alpha",
        "total_steps",
        "warmup_steps",
        "schedule",
        "tail_steps",
        "global_batch",
        "micro_batch",
        "eval_every",
        "eval_samples",
        "patience",
        "ckpt_every",
        "num_workers",
    )
    train = {k: ALIGN[k] for k in keys}
    train.update(objective="aloe", seed=STUDY["seed"], progress=False)
    train.update(extra)
    return train


def run_inputs(w):
    fraction = SETTINGS[w.setting]["overrides"].get("fraction", 1.0)
    files = [
        f"results/teachers/{w.teacher}/teacher.json",
        f"{SHARDS}/summary.json",
        f"results/alignment_sets/{ASET}/subset_val/subset.json",
    ]
    if fraction < 1.0:
        files.append(f"results/alignment_sets/{ASET}/subset_{fraction:g}/subset.json")
    return files


def run_kwargs(w):
    overrides = dict(SETTINGS[w.setting]["overrides"])
    fraction = overrides.pop("fraction", 1.0)
    depths = overrides.pop("depths", ALIGN["depths"])
    extra = dict(overrides, lr=float(w.lr))
    if depths == []:  # "pool": the global term alone
        extra["lambda_layers"] = 0.0
    return dict(
        teacher=teacher_source(w.teacher),
        teacher_depth=TEACHERS[w.teacher]["depth"],
        b=ALIGN["b"],
        stem=ALIGN["stem"],
        depths=depths if depths != [] else "default",
        train=training_keys(**extra),
        shards=(
            SHARDS
            if fraction == 1.0
            else f"results/alignment_sets/{ASET}/subset_{fraction:g}"
        ),
        heldout_shards=f"results/alignment_sets/{ASET}/subset_val",
        train_keys=(
            f"results/alignment_sets/{ASET}/splits/train_1.txt"
            if fraction == 1.0
            else None
        ),
    )


def baseline_kwargs(w):
    base = STUDY["baselines"]
    family = TEACHERS[w.teacher]["family"]
    train = dict(
        training_keys(),
        lr=base["lr"],
        total_steps=base["total_steps"],
        warmup_steps=base["warmup_steps"],
        global_batch=base["global_batch"],
        micro_batch=base["micro_batch"],
        ckpt_every=base["ckpt_every"],
        eval_every=0,
        patience=0,
        schedule="cosine",
        tail_steps=0,
    )
    kwargs = dict(
        teacher=teacher_source(w.teacher),
        teacher_depth=TEACHERS[w.teacher]["depth"],
        b=ALIGN["b"],
        stem=ALIGN["stem"],
    )
    if (
        family == "siglip"
    ):  # B-cosification of CLIP-like models: distil the final image embedding only
        train.update(objective="global_distill", lambda_layers=0.0)
        return dict(
            kwargs,
            train=train,
            shards=SHARDS,
            train_keys=f"results/alignment_sets/{ASET}/splits/train_1.txt",
        )
    dataset = base["supervised_dataset"]  # supervised fine-tuning with labels
    train.update(
        objective="supervised",
        data_loader="stream",
        num_classes=EVAL["datasets"][dataset]["classes"],
    )
    return dict(kwargs, train=train, shards=f"{eval_dataset_dir(dataset)}/train")


def baseline_inputs(w):
    files = [f"results/teachers/{w.teacher}/teacher.json"]
    if TEACHERS[w.teacher]["family"] == "siglip":
        return files + [
            f"{SHARDS}/summary.json",
            f"results/alignment_sets/{ASET}/splits/splits.json",
        ]
    return files + [eval_dataset_input(STUDY["baselines"]["supervised_dataset"])]


# ---- used by eval.smk ----
def record_variant(variant):
    """Path-safe variant names -> the record convention of aloe.tables (aloe_loss-mse -> aloe:loss=mse)."""
    if variant.startswith("aloe_"):
        axis, _, setting = variant.removeprefix("aloe_").partition("-")
        return f"aloe:{axis}={setting}"
    return variant


def device_for(stage):
    return "cuda" if STUDY["resources"][stage].get("gpus_per_node", 0) > 0 else "cpu"


def dense_blocks(teacher):
    """0-based blocks whose patch tokens feed the dense probes (Probe3D: L/4-1, L/2-1, 3L/4-1, L-1)."""
    depth = TEACHERS[teacher]["depth"]
    blocks = EVAL["dense"]["blocks"]
    if blocks == "quartiles":
        return sorted({max(depth * q // 4 - 1, 0) for q in (1, 2, 3, 4)})
    if blocks == "last":
        return [depth - 1]
    return [b - 1 for b in blocks]


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


TABLES = [
    "table2",
    "table3a",
    "table3b",
    "table4",
    "tableB1",
    "tableB2",
    "tableB3",
    "tableB4",
    "tableB5",
    "tableB6",
    "tableB8",
]


wildcard_constraints:
    teacher="|".join(TEACHERS),
    dataset="[A-Za-z0-9_]+",
    split="train|test",
    variant="teacher|bcosification|aloe|aloe_[A-Za-z0-9_.-]+",
