"""One B-cos explanation W(x)·x (aloe.explain) vs captum IntegratedGradients with 50 steps,
per image, on the same B-cos student with a linear class head (random weights: cost does not
depend on training). IG is also timed on the conventional teacher. Rounds interleave.

python3 benchmarks/eval_explain_vs_ig.py [--hidden 768 --layers 12 --heads 12 --image 224
    --patch 16] [--device cuda] [--images 4 --rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import transformers as T
from eval_common import machine

from aloe import bcosify, load_teacher
from aloe.eval.attributions import integrated_gradients, make_attribution_fn
from aloe.eval.classifier import ProbedClassifier


def timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--image", type=int, default=224)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ig-steps", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = T.ViTConfig(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      intermediate_size=4 * args.hidden, image_size=args.image, patch_size=args.patch)
    with tempfile.TemporaryDirectory() as d:
        T.ViTModel(cfg, add_pooling_layer=False).save_pretrained(d)
        teacher = load_teacher(d).to(args.device)
    student = bcosify(teacher).to(args.device).eval()
    w, b = torch.randn(args.hidden, args.classes) * 0.02, torch.zeros(args.classes)
    clf_s = ProbedClassifier(student, w, b).to(args.device).eval()
    clf_t = ProbedClassifier(teacher, w, b).to(args.device).eval()
    explain_fn = make_attribution_fn("bcos", clf_s)
    x = torch.rand(args.images, 3, args.image, args.image, device=args.device)
    cls = torch.randint(0, args.classes, (args.images,), device=args.device)
    print(f"machine: {machine()}; device {args.device}; ViT {args.layers}x{args.hidden} @ {args.image}px/{args.patch}, "
          f"{args.images} images one at a time, IG {args.ig_steps} steps (internal batch = steps)")
    explain_fn(x[:1], cls[:1])  # warm-up
    integrated_gradients(clf_s, x[:1], cls[:1], n_steps=2)
    ratios = []
    for rnd in range(args.rounds):
        t_exp = t_ig_s = t_ig_t = 0.0
        for i in range(args.images):
            xi, ci = x[i : i + 1], cls[i : i + 1]
            t_exp += timed(lambda: explain_fn(xi, ci), args.device)
            t_ig_s += timed(lambda: integrated_gradients(clf_s, xi, ci, n_steps=args.ig_steps,
                                                         internal_batch_size=args.ig_steps), args.device)
            t_ig_t += timed(lambda: integrated_gradients(clf_t, xi, ci, n_steps=args.ig_steps,
                                                         internal_batch_size=args.ig_steps), args.device)
        n = args.images
        ratios.append(t_ig_s / t_exp)
        print(f"round {rnd}: W(x)x {1e3 * t_exp / n:.1f} ms/img; IG on student {1e3 * t_ig_s / n:.1f} ms/img "
              f"(ratio {ratios[-1]:.1f}x); IG on teacher {1e3 * t_ig_t / n:.1f} ms/img "
              f"(ratio {t_ig_t / t_exp:.1f}x)")
    print(f"median ratio (IG on student / W(x)x): {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
