"""The alignment runs of a study and what each one trains: the keyword arguments of
``aloe.align.stages.alignment_job`` for the ALOE runs and the B-cosification baselines.

"main" is the paper's recipe with its LR sweep (every teacher of ``alignment.teachers`` at every
LR of ``alignment.lrs``); the ablations (``ablations``: depths, Table 4; losses, Table B8; data
fractions, Fig. 9) change one thing each and train at the single LR ``ablations.lr`` for
``ablations.total_steps``. The protocol decisions taken here are named: ``TRAINING_KEYS``,
``global_only`` (the depth ablation's "pool") and ``baseline_objective``.
"""

from __future__ import annotations

from typing import Any, Mapping

from aloe.study.layout import alignment_set_dir, eval_dataset_dir, eval_dataset_input, shards_dir, teacher_source

# The config keys of ``alignment`` that every run (ALOE and baseline) hands to the trainer as is.
TRAINING_KEYS = (
    "loss", "lambda_global", "lambda_layers", "alpha", "total_steps", "warmup_steps", "schedule", "tail_steps",
    "global_batch", "micro_batch", "eval_every", "eval_samples", "patience", "ckpt_every", "num_workers",
    "max_corrupt_share",
)


def global_only(depths: Any) -> bool:
    """Whether config ``depths`` is ``[]``, the depth ablation's setting "pool" (Table 4): the
    student is aligned on its global (pooled) feature alone. The token-level term is switched off
    by its weight, ``lambda_layers = 0``, not by the depths: the trainer's ``depths`` stay
    ``"default"`` (an empty depth list is an error there), so the run differs from the other
    settings in the token-level weight only."""
    return depths == []


# The B-cosification baseline (Arya et al., 2024) per teacher family. B-cosification has two
# recipes: a classifier is fine-tuned with the labels of its task, a CLIP-like model distils its
# final image embedding (no labels). See ``baseline_objective``.
BASELINE_OBJECTIVES = {"vit": "supervised", "dinov3": "supervised", "siglip": "global_distill"}


def baseline_objective(family: str) -> str:
    """The training objective (``aloe.align.objectives``) of a family's B-cosification baseline.

    SigLIP2 is CLIP-like: ``global_distill`` aligns the student's final image embedding with the
    teacher's on the alignment set's images (B-cosification's recipe for CLIP), with no
    token-level term. The supervised ViT is a classifier, so it gets the classifier recipe:
    ``supervised``, cross-entropy through a linear head on ``baselines.supervised_dataset``
    (ImageNet-1k in the paper preset, ``shapes`` in the demo). DINOv3 (self-supervised, no text
    tower) is treated as the ViT is: this study's choice, stated in the README's "Alignment
    choices"."""
    if family not in BASELINE_OBJECTIVES:
        raise ValueError(f"no B-cosification baseline for teacher family {family!r}; "
                         f"families: {sorted(BASELINE_OBJECTIVES)}")
    return BASELINE_OBJECTIVES[family]


def alignment_settings(study: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Setting name -> {teachers, lrs, overrides}: "main", then depths-<name>, loss-<loss> and
    data-<fraction> of the ablations, whose overrides replace the main recipe's values."""
    align, abl = study["alignment"], study["ablations"]
    settings = {"main": {"teachers": align["teachers"], "lrs": align["lrs"], "overrides": {}}}
    single = {"lrs": [abl["lr"]]}
    for name, depths in abl["depths"]["settings"].items():
        settings[f"depths-{name}"] = dict(
            single, teachers=abl["depths"]["teachers"], overrides={"depths": depths, "total_steps": abl["total_steps"]})
    for loss in abl["losses"]["settings"]:
        settings[f"loss-{loss}"] = dict(
            single, teachers=abl["losses"]["teachers"], overrides={"loss": loss, "total_steps": abl["total_steps"]})
    for fraction in abl["fractions"]["settings"]:
        settings[f"data-{fraction:g}"] = dict(
            single, teachers=abl["fractions"]["teachers"],
            overrides={"fraction": fraction, "total_steps": abl["total_steps"]})
    return settings


def setting_fraction(study: Mapping[str, Any], setting: str) -> float:
    """The share of the alignment set's training keys a setting trains on (1.0 but for data-<f>)."""
    return alignment_settings(study)[setting]["overrides"].get("fraction", 1.0)


def training_keys(study: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The trainer's settings of the main recipe (``TRAINING_KEYS``, the ALOE objective, the
    study's seed), with ``extra`` replacing or adding keys."""
    train = {k: study["alignment"][k] for k in TRAINING_KEYS}
    train.update(objective="aloe", seed=study["seed"], progress=False)
    train.update(extra)
    return train


def run_inputs(study: Mapping[str, Any], teacher: str, setting: str) -> list[str]:
    """The files an ALOE run reads: its teacher's record, the shards, the held-out subset, and
    the subset of its data fraction below 1."""
    aset, fraction = alignment_set_dir(study), setting_fraction(study, setting)
    files = [
        f"results/teachers/{teacher}/teacher.json",
        f"{shards_dir(study)}/summary.json",
        f"{aset}/subset_val/subset.json",
    ]
    if fraction < 1.0:
        files.append(f"{aset}/subset_{fraction:g}/subset.json")
    return files


def run_kwargs(study: Mapping[str, Any], teacher: str, setting: str, lr: str) -> dict[str, Any]:
    """alignment_job's keyword arguments of the run ``{teacher}/{setting}/lr{lr}`` (``lr`` as the
    wildcard gives it)."""
    align, aset = study["alignment"], alignment_set_dir(study)
    overrides = dict(alignment_settings(study)[setting]["overrides"])
    fraction = overrides.pop("fraction", 1.0)
    depths = overrides.pop("depths", align["depths"])
    extra = dict(overrides, lr=float(lr))
    if global_only(depths):
        extra["lambda_layers"] = 0.0
    return dict(
        teacher=teacher_source(study, teacher),
        teacher_depth=study["teachers"][teacher]["depth"],
        b=align["b"],
        stem=align["stem"],
        depths="default" if global_only(depths) else depths,
        train=training_keys(study, **extra),
        shards=shards_dir(study) if fraction == 1.0 else f"{aset}/subset_{fraction:g}",
        heldout_shards=f"{aset}/subset_val",
        train_keys=f"{aset}/splits/train_1.txt" if fraction == 1.0 else None,
    )


def baseline_kwargs(study: Mapping[str, Any], teacher: str) -> dict[str, Any]:
    """alignment_job's keyword arguments of a teacher's B-cosification baseline: the ``baselines``
    schedule (cosine, no held-out evaluation or early stopping), ``baseline_objective`` and the
    B-cos layers' form ``baselines.bcos_form``."""
    base, align = study["baselines"], study["alignment"]
    train = dict(
        training_keys(study),
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
    kwargs = dict(teacher=teacher_source(study, teacher), teacher_depth=study["teachers"][teacher]["depth"],
                  b=align["b"], stem=align["stem"], bcos_form=base["bcos_form"])
    objective = baseline_objective(study["teachers"][teacher]["family"])
    if objective == "global_distill":
        train.update(objective=objective, lambda_layers=0.0)
        return dict(kwargs, train=train, shards=shards_dir(study),
                    train_keys=f"{alignment_set_dir(study)}/splits/train_1.txt")
    dataset = base["supervised_dataset"]
    train.update(objective=objective, num_classes=study["evaluation"]["datasets"][dataset]["classes"])
    return dict(kwargs, train=train, shards=f"{eval_dataset_dir(study, dataset)}/train")


def baseline_inputs(study: Mapping[str, Any], teacher: str) -> list[str]:
    """The files a baseline reads: its teacher's record, and the alignment set's shards and splits
    (distillation) or the labelled dataset (supervised)."""
    files = [f"results/teachers/{teacher}/teacher.json"]
    if baseline_objective(study["teachers"][teacher]["family"]) == "global_distill":
        return files + [f"{shards_dir(study)}/summary.json", f"{alignment_set_dir(study)}/splits/splits.json"]
    return files + [eval_dataset_input(study, study["baselines"]["supervised_dataset"])]
