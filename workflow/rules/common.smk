# Shared helpers: the selected study block, naming of backbones and alignment runs, launch stages.
import os

from aloe.pipeline import rule_resources
from aloe.registry import TABLE_NAMES, check_study


def canonical(obj):
    """A sorted-key copy. Snakemake compares params as text, so the order of keys in config.yaml
    must not decide whether a stage reruns."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


check_study(config)  # every name against aloe.registry, before any job
STUDY = canonical(config[config["preset"]])
TEACHERS = STUDY["teachers"]
EVAL = STUDY["evaluation"]
ALIGN = STUDY["alignment"]
ABLATIONS = STUDY["ablations"]
STAGE = "../scripts/stage.py"


def launch_block(stage):
    """Which resource block a job-running stage uses. Only the stage name goes into params: the
    resources themselves (partition, account, time, ...) are read when the job is submitted
    (aloe.pipeline.launch_settings), so changing them never reruns a finished stage."""
    assert (
        stage in STUDY["resources"]
    ), f"no resources.{stage} block in the config preset"
    return {"stage": stage}


def job_resources(stage):
    """Snakemake resources of a job-running rule: what its job holds on the cluster (gpus, cpus,
    mem_mib of the stage's resource block), so that `--resources gpus=N` caps the GPUs held at once.
    Resources never rerun a finished stage."""
    return rule_resources(config, stage)


def job_resources_by(block_of):
    """job_resources of a rule whose resource block depends on its wildcards (block_of(wildcards))."""
    return {
        key: (lambda wildcards, key=key: job_resources(block_of(wildcards)).get(key, 0))
        for key in ("gpus", "cpus", "mem_mib")
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


def eval_dataset_block(wildcards):
    """torchvision downloads need the internet (the `download` block); local copies do not (`data`)."""
    source = EVAL["datasets"][wildcards.dataset]["source"]
    return "download" if source == "torchvision" else "data"


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
        "max_corrupt_share",
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


wildcard_constraints:
    teacher="|".join(TEACHERS),
    dataset="[A-Za-z0-9_]+",
    split="train|test",
    variant="teacher|bcosification|aloe|aloe_[A-Za-z0-9_.-]+",
