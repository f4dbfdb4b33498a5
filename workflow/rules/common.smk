# Shared helpers: the selected study block, naming of backbones and alignment runs, launch stages.
# The recipes are plain functions of aloe.study (unit-tested in tests/workflow/test_study_plans.py);
# the functions here bind them to the selected study and to the rules' wildcards.
import os

from aloe.pipeline import rule_resources
from aloe.registry import TABLE_NAMES, check_study
from aloe.study import alignment_plan, eval_plan, layout, table_plans
from aloe.study.layout import (
    canonical,
    feature_file,
    head_file,
    record_variant,
    variant_setting,
)

check_study(config)  # every name against aloe.registry, before any job
STUDY = canonical(config[config["preset"]])
TEACHERS = STUDY["teachers"]
EVAL = STUDY["evaluation"]
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
    return layout.teacher_source(STUDY, teacher)


# the alignment settings: "main" and the ablations (aloe.study.alignment_plan)
SETTINGS = alignment_plan.alignment_settings(STUDY)


def backbone(teacher, variant):
    """(path, kind) of a backbone as the evaluation stages load it."""
    return layout.backbone(STUDY, teacher, variant)


def backbone_input(wildcards):
    if wildcards.variant == "teacher":
        return f"results/teachers/{wildcards.teacher}/teacher.json"
    return f"results/backbones/{wildcards.teacher}/{wildcards.variant}"


def eval_dataset_dir(dataset):
    return layout.eval_dataset_dir(STUDY, dataset)


def eval_dataset_block(wildcards):
    """torchvision downloads need the internet (the `download` block); local copies do not (`data`)."""
    source = EVAL["datasets"][wildcards.dataset]["source"]
    return "download" if source == "torchvision" else "data"


def eval_dataset_input(dataset):
    return layout.eval_dataset_input(STUDY, dataset)


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
def run_inputs(w):
    return alignment_plan.run_inputs(STUDY, w.teacher, w.setting)


def run_kwargs(w):
    return alignment_plan.run_kwargs(STUDY, w.teacher, w.setting, w.lr)


def baseline_kwargs(w):
    return alignment_plan.baseline_kwargs(STUDY, w.teacher)


def baseline_inputs(w):
    return alignment_plan.baseline_inputs(STUDY, w.teacher)


wildcard_constraints:
    teacher="|".join(TEACHERS),
    dataset="[A-Za-z0-9_]+",
    split="train|test",
    variant="teacher|bcosification|aloe|aloe_[A-Za-z0-9_.-]+",
