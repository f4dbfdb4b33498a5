"""GPU-hours of the paper study per stage, from measured throughput scaled by model FLOPs.

Anchor (measured, benchmarks/README.md "GPU: ViT-B/16, 224 px, bf16, one H100", 2026-11-22): one
alignment step of the B-cos ViT-B/16 student (teacher forward + student forward and backward,
bf16, eager, which is how the training loop runs today) processes 750 img/s on one H100. Other
teachers scale by their training FLOPs per image (published configs, aloe.models.hub_teachers);
feature caching is a forward pass of one backbone (a quarter of a step's FLOPs) and is assumed to
run at the same MFU. Probes (LP, k-NN) are measured at seconds per job and are listed as such.
An estimate for planning and for asking an allocation, not a measurement of the whole study.

    python3 benchmarks/paper_gpu_hours.py            # markdown table for the README
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aloe.models.hub_teachers import teacher_config  # noqa: E402

ANCHOR_ID, ANCHOR_IMG_S = "google/vit-base-patch16-224", 750.0
# images per dataset (train + test) of the splits aloe.data.eval_datasets writes
DATASET_IMAGES = {"imagenet1k": 1_281_167 + 50_000, "caltech101": 9_144, "flowers102": 8_189, "food101": 101_000,
                  "fgvc_aircraft": 10_000, "dtd": 5_640, "stanford_cars": 16_185, "sun397": 108_754,
                  "cifar10": 60_000, "cifar100": 60_000, "nyuv2": 1_449}  # fmt: skip


def forward_flops(hub_id: str) -> float:
    """Forward FLOPs of one image through the vision encoder (2 per multiply-add)."""
    cfg = teacher_config(hub_id)
    v = getattr(cfg, "vision_config", cfg)
    tokens = (v.image_size // v.patch_size) ** 2 + 1 + getattr(v, "num_register_tokens", 0)
    d, mlp = v.hidden_size, v.intermediate_size * (1.5 if getattr(v, "use_gated_mlp", False) else 1)
    per_layer = 2 * tokens * (4 * d * d + 2 * d * mlp) + 4 * tokens * tokens * d
    return v.num_hidden_layers * per_layer + 2 * tokens * (3 * v.patch_size**2) * d


def step_img_s(hub_id: str) -> float:
    return ANCHOR_IMG_S * forward_flops(ANCHOR_ID) / forward_flops(hub_id)


def estimate(paper: dict) -> list[tuple[str, int, float]]:
    teachers, align, abl, base = paper["teachers"], paper["alignment"], paper["ablations"], paper["baselines"]
    hub = {n: t["source"] for n, t in teachers.items()}
    h = lambda steps, batch, name: steps * batch / step_img_s(hub[name]) / 3600  # noqa: E731
    rows = [("align: main recipe (LR sweep)", len(align["teachers"]) * len(align["lrs"]),
             sum(h(align["total_steps"], align["global_batch"], t) * len(align["lrs"]) for t in align["teachers"]))]
    ablated = [(t, n) for k in ("depths", "losses", "fractions") for t in abl[k]["teachers"] for n in abl[k]["settings"]]
    rows.append(("align: ablations (Table 4, B8, Fig. 9)", len(ablated),
                 sum(h(abl["total_steps"], align["global_batch"], t) for t, _ in ablated)))
    rows.append(("align: B-cosification baselines", len(base["teachers"]),
                 sum(h(base["total_steps"], base["global_batch"], t) for t in base["teachers"])))
    ev = paper["evaluation"]
    backbones = [(t, 3 if t in base["teachers"] else 2) for t in align["teachers"]]  # teacher, (baseline), ALOE
    images = sum(DATASET_IMAGES[d] for d in ev["classification"])
    feats = sum(n * images / (4 * step_img_s(hub[t])) / 3600 for t, n in backbones)
    rows.append(("features: every main backbone on the 10 datasets", sum(n for _, n in backbones) * 10, feats))
    return rows


def main() -> None:
    paper = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["paper"]
    rows = estimate(paper)
    print("| stage | jobs | GPU-hours (H100, estimate) |\n|---|---|---|")
    for name, jobs, hours in rows:
        print(f"| {name} | {jobs} | {hours:,.0f} |")
    print(f"| total of these | {sum(r[1] for r in rows)} | {sum(r[2] for r in rows):,.0f} |")
    print("\nPer alignment run at the paper's 60k steps x 1024 images (img/s on one H100, estimated):")
    for name, t in paper["teachers"].items():
        img_s = step_img_s(t["source"])
        print(f"- {name}: {img_s:,.0f} img/s, {60000 * 1024 / img_s / 3600:,.0f} GPU-hours")


if __name__ == "__main__":
    main()
