"""Train the three demo teachers at the demo size and measure them on held-out synthetic data.

For each family: training seconds, the train summary, linear-probe top-1 on held-out shapes,
textures and digits (logistic regression on ``teacher(pixels).pooler_output``), and for SigLIP
zero-shot top-1 with "a photo of a {c}." through the evaluation's own zero-shot code. The
baseline, measured in the same run, is an UNTRAINED teacher of the same architecture (its
random-init encoder saved and loaded the same way), so the ratio shows what training bought.

    python3 benchmarks/demo_teachers.py --out /tmp/demo_teachers [--steps 300] [--num-images 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from aloe import load_teacher
from aloe.data.synthetic_images import digit_image
from aloe.eval.zeroshot import build_siglip_classifier, zeroshot_top1
from aloe.models.demo_teacher_data import HELD_OUT_STREAM, demo_caption_pairs, demo_labelled_images
from aloe.models.demo_teachers import build_demo_teacher, torch_threads

SHAPES = 8


def _pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def probe_sets(size: int) -> dict[str, tuple]:
    """(train pixels, train labels, test pixels, test labels) per probe set, all unseen by the teachers."""
    images, labels, _ = demo_labelled_images(seed=0, stream=HELD_OUT_STREAM, num_images=2800, image_size=size,
                                             num_shape_classes=SHAPES)
    shape, texture = labels < SHAPES, labels >= SHAPES
    sets = {}
    for name, mask, offset in (("shapes", shape, 0), ("textures", texture, SHAPES)):
        x, y = _pixels(images[mask]), labels[mask] - offset
        half = len(y) // 2
        sets[name] = (x[:half], y[:half], x[half:], y[half:])
    digits = load_digits()
    x = _pixels(np.stack([digit_image(im, size) for im in digits.images]))
    y = digits.target
    sets["digits"] = (x[:1200], y[:1200], x[1200:], y[1200:])
    return sets


@torch.no_grad()
def features(teacher, x: torch.Tensor) -> np.ndarray:
    return torch.cat([teacher(x[s : s + 256]).pooler_output for s in range(0, len(x), 256)]).numpy()


def linear_probe(teacher, sets: dict) -> dict[str, float]:
    out = {}
    for name, (xtr, ytr, xte, yte) in sets.items():
        ftr, fte = features(teacher, xtr), features(teacher, xte)
        mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
        clf = LogisticRegression(max_iter=2000, C=1.0).fit((ftr - mu) / sd, ytr)
        out[name] = round(100.0 * float((clf.predict((fte - mu) / sd) == yte).mean()), 1)
    return out


def zero_shot(teacher, size: int) -> float:
    images, _, labels, names = demo_caption_pairs(seed=0, stream=HELD_OUT_STREAM + 1, num_images=1400,
                                                  image_size=size, num_shape_classes=SHAPES)
    clf, scale, bias = build_siglip_classifier(teacher.hf_model, teacher.tokenizer, names, ["a photo of a {}."])
    return round(zeroshot_top1(teacher, [(_pixels(images), torch.from_numpy(labels))], clf, scale, bias)[0], 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--num-images", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--families", default="vit,dinov3,siglip")
    args = ap.parse_args()
    sets = probe_sets(args.size)
    results = {}
    for family in args.families.split(","):
        row = {}
        for variant, steps in (("untrained", 1), ("trained", args.steps)):
            kw = dict(steps=steps, lr=1e-3 if steps > 1 else 1e-12)  # 1 step at lr ~0 = the random init
            start = time.perf_counter()
            summary = build_demo_teacher(family, args.out / f"{family}_{variant}", seed=0, image_size=args.size,
                                         num_images=args.num_images, num_shape_classes=SHAPES, threads=1, **kw)
            seconds = time.perf_counter() - start
            with torch_threads(1):
                teacher = load_teacher(args.out / f"{family}_{variant}")
                row[variant] = {"build_seconds": round(seconds, 1), "lp_top1": linear_probe(teacher, sets)}
                if family == "siglip":
                    row[variant]["zero_shot_top1"] = zero_shot(teacher, args.size)
            if variant == "trained":
                row[variant]["summary"] = summary
            print(family, variant, json.dumps(row[variant]), flush=True)
        results[family] = row
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
