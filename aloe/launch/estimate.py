"""Expected GPU-hours of the paper's GPU jobs, from measured throughput scaled by model FLOPs.

Anchor (measured, benchmarks/README.md "GPU: ViT-B/16, 224 px, bf16, one H100", 2026-11-22): one
alignment step of the B-cos ViT-B/16 student (teacher forward + student forward and backward,
bf16, eager, which is how the training loop runs today) processes 750 img/s on one H100. Other
teachers scale by their training FLOPs per image (published configs, aloe.models.hub_teachers);
feature caching is a forward pass of one backbone (a quarter of a step's FLOPs) and is assumed to
run at the same MFU. Probes (LP, k-NN, zero-shot, dense) and explanations have no measured
throughput here: they get no estimate. GPU-hours are the same however many GPUs a job spreads
them over (linear scaling assumed). An estimate for planning and for asking an allocation, not a
measurement of the whole study. Used by ``python -m aloe.launch plan`` (per job), by packing
(``expected_minutes``: the work a packed call adds to its allocation) and by
``benchmarks/paper_gpu_hours.py`` (the README's table).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

ANCHOR_ID, ANCHOR_IMG_S = "google/vit-base-patch16-224", 750.0
# images per dataset (train + test) of the splits aloe.data.eval_datasets writes
DATASET_IMAGES = {"imagenet1k": 1_281_167 + 50_000, "caltech101": 9_144, "flowers102": 8_189, "food101": 101_000,
                  "fgvc_aircraft": 10_000, "dtd": 5_640, "stanford_cars": 16_185, "sun397": 108_754,
                  "cifar10": 60_000, "cifar100": 60_000, "nyuv2": 1_449}
ALIGN_FNS = ("aloe.align.stages:run_align_run", "aloe.align.stages:run_baseline_run")
FEATURES_FN = "aloe.eval.stages:run_features"


def known_teacher(hub_id: str) -> bool:
    from aloe.models.hub_teachers import HUB_TEACHERS

    return hub_id in HUB_TEACHERS


@lru_cache(maxsize=None)
def forward_flops(hub_id: str) -> float:
    """Forward FLOPs of one image through the vision encoder (2 per multiply-add)."""
    from aloe.models.hub_teachers import teacher_config

    cfg = teacher_config(hub_id)
    v = getattr(cfg, "vision_config", cfg)
    tokens = (v.image_size // v.patch_size) ** 2 + 1 + getattr(v, "num_register_tokens", 0)
    d, mlp = v.hidden_size, v.intermediate_size * (1.5 if getattr(v, "use_gated_mlp", False) else 1)
    per_layer = 2 * tokens * (4 * d * d + 2 * d * mlp) + 4 * tokens * tokens * d
    return v.num_hidden_layers * per_layer + 2 * tokens * (3 * v.patch_size**2) * d


def step_img_s(hub_id: str) -> float:
    """Alignment step throughput on one H100 for a student of ``hub_id`` (images per second)."""
    return ANCHOR_IMG_S * forward_flops(ANCHOR_ID) / forward_flops(hub_id)


def align_gpu_hours(hub_id: str, steps: int, global_batch: int) -> float:
    return steps * global_batch / step_img_s(hub_id) / 3600


def features_gpu_hours(hub_id: str, dataset: str) -> float:
    return DATASET_IMAGES[dataset] / (4 * step_img_s(hub_id)) / 3600


def job_gpu_hours(fn: str, kwargs: Mapping[str, Any], hub_id: str | None) -> float | None:
    """Expected GPU-hours of one job calling ``fn(**kwargs)`` whose backbone is (a student of) the
    hub teacher ``hub_id``; None where no measured throughput covers it."""
    if hub_id is None or not known_teacher(hub_id):
        return None
    if fn in ALIGN_FNS:
        train = kwargs["train"]
        return align_gpu_hours(hub_id, train["total_steps"], train["global_batch"])
    if fn == FEATURES_FN and kwargs.get("dataset") in DATASET_IMAGES:
        return features_gpu_hours(hub_id, kwargs["dataset"])
    return None


def expected_minutes(fn: str, kwargs: Mapping[str, Any], hub_id: str | None, resources: Mapping[str, Any]) -> float:
    """Expected wall minutes of one job (what packing sums, ``aloe.launch.pack``): the measured
    estimate spread over the job's GPUs where one exists, else the stage's ``expected_min``
    (default 1)."""
    hours = job_gpu_hours(fn, kwargs, hub_id)
    gpus = resources.get("nodes", 1) * resources.get("gpus_per_node", 0)
    if hours is None or not gpus:
        return float(resources.get("expected_min", 1.0))
    return 60.0 * hours / gpus


def estimate(paper: Mapping[str, Any]) -> list[tuple[str, int, float]]:
    """(stage, jobs, GPU-hours) of the paper study's alignment and main feature jobs."""
    teachers, align, abl, base = paper["teachers"], paper["alignment"], paper["ablations"], paper["baselines"]
    hub = {n: t["source"] for n, t in teachers.items()}
    batch = align["global_batch"]
    rows = [("align: main recipe (LR sweep)", len(align["teachers"]) * len(align["lrs"]),
             sum(align_gpu_hours(hub[t], align["total_steps"], batch) * len(align["lrs"]) for t in align["teachers"]))]
    ablated = [(t, n) for k in ("depths", "losses", "fractions")
               for t in abl[k]["teachers"] for n in abl[k]["settings"]]
    rows.append(("align: ablations (Table 4, B8, Fig. 9)", len(ablated),
                 sum(align_gpu_hours(hub[t], abl["total_steps"], batch) for t, _ in ablated)))
    rows.append(("align: B-cosification baselines", len(base["teachers"]),
                 sum(align_gpu_hours(hub[t], base["total_steps"], base["global_batch"]) for t in base["teachers"])))
    ev = paper["evaluation"]
    backbones = [(t, 3 if t in base["teachers"] else 2) for t in align["teachers"]]  # teacher, (baseline), ALOE
    feats = sum(n * features_gpu_hours(hub[t], d) for t, n in backbones for d in ev["classification"])
    rows.append(("features: every main backbone on the 10 datasets", sum(n for _, n in backbones) * 10, feats))
    return rows
