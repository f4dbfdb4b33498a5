"""Train step (forward + backward + AdamW) of the B=2 student vs the plain teacher architecture.

Same shape, same batch, same device. Timings are interleaved (teacher, student, teacher, ...)
so machine noise hits both alike; the reported ratio is median(student) / median(teacher).

    python3 benchmarks/bcos_train_step.py --hidden 192 --layers 6 --heads 3 --image 64 --patch 8 --batch 32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import transformers as T

from aloe import bcosify, load_teacher


def step_fn(model, pixels, forward):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)

    def step():
        opt.zero_grad(set_to_none=True)
        forward(model, pixels).pow(2).mean().backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--image", type=int, default=64)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = T.ViTConfig(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      intermediate_size=4 * args.hidden, image_size=args.image, patch_size=args.patch,
                      attn_implementation="sdpa")
    with tempfile.TemporaryDirectory() as d:
        T.ViTModel(cfg, add_pooling_layer=False).save_pretrained(d)
        teacher = load_teacher(d)
    plain = teacher.vision.train()
    for p in plain.parameters():
        p.requires_grad_(True)
    student = bcosify(teacher, b=2).train()
    pixels = torch.rand(args.batch, 3, args.image, args.image)
    norm_pixels = teacher.preprocess(pixels)
    steps = {
        "plain": step_fn(plain, norm_pixels, lambda m, x: m(pixel_values=x).last_hidden_state[:, 0]),
        "bcos": step_fn(student, pixels, lambda m, x: m(x).pooler_output),
    }
    times = {k: [] for k in steps}
    for _ in range(3):
        for s in steps.values():
            s()
    for _ in range(args.repeats):
        for k, s in steps.items():
            t0 = time.perf_counter()
            s()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"ViT hidden {args.hidden} x {args.layers} layers, {args.image}px / patch {args.patch}")
    for k in steps:
        print(f"{k:6s} median step {med[k] * 1e3:8.1f} ms  ({args.batch / med[k]:7.1f} img/s)")
    print(f"ratio bcos/plain = {med['bcos'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
