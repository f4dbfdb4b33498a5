"""Full alignment step throughput: B-cos student vs a plain student of the same shape.

One step = teacher forward (no grad) + student forward/backward through the ALOE objective
(global + 3-depth token cosine terms) + grad-norm clip + AdamW. The plain student is a trainable
copy of the teacher (same HF ViT, same shape). Rounds of the two variants are interleaved so
machine load affects both alike; medians over rounds are reported, with the ratio
plain img/s / B-cos img/s (target <= 1.15 on CPU, tiny model), also as the median of per-round
ratios (more robust on a shared machine).

On a GPU: --device cuda --dtype bf16 --model-size base --peak-tflops 989 reports model FLOP
utilisation (FLOPs counted with torch.utils.flop_counter on one step), and --compile / --sdpa
try torch.compile and SDPA attention in the HF models (the B-cos student always uses SDPA
outside explanation mode).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers as T
from torch.utils.flop_counter import FlopCounterMode

from aloe.align.objectives import AlignObjective
from aloe.models import bcosify, load_teacher

SIZES = {  # hidden, layers, heads, image, patch
    "tiny": (192, 6, 3, 64, 8),
    "small": (384, 12, 6, 224, 16),
    "base": (768, 12, 12, 224, 16),
}


def make_teacher(size: str, folder: str, attn: str):
    d, layers, heads, image, patch = SIZES[size]
    cfg = T.ViTConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * d,
                      image_size=image, patch_size=patch)
    T.ViTModel(cfg, add_pooling_layer=False).save_pretrained(folder)
    teacher = load_teacher(folder)
    teacher.hf_model.set_attn_implementation(attn)
    return teacher


def make_step(student, teacher, dev, dtype, compile_model: bool):
    objective = AlignObjective(student.num_layers)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    fwd = torch.compile(student) if compile_model else student
    t_fwd = torch.compile(teacher) if compile_model else teacher
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if dtype == "bf16" else contextlib.nullcontext

    def step(pixels):
        opt.zero_grad(set_to_none=True)
        with autocast():
            with torch.no_grad():
                t_out = t_fwd(pixels, output_hidden_states=True)
            loss, _ = objective(fwd, t_out, pixels, None, teacher)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return step


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(step, pixels, n: int, dev) -> float:
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(n):
        step(pixels)
    sync(dev)
    return n * pixels.shape[0] / (time.perf_counter() - t0)


def step_flops(step, pixels) -> int:
    with FlopCounterMode(display=False) as counter:
        step(pixels)
    return counter.get_total_flops()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--model-size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave default)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--sdpa", action="store_true", help="SDPA attention in the HF teacher / plain student")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="dense peak of the device for MFU")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    attn = "sdpa" if args.sdpa else "eager"
    with tempfile.TemporaryDirectory() as tmp:
        teacher = make_teacher(args.model_size, tmp, attn).to(dev)
        bcos = bcosify(teacher).to(dev).train()
        plain = load_teacher(tmp).to(dev)
        plain.hf_model.set_attn_implementation(attn)
        plain.requires_grad_(True)
    image = teacher.image_size
    pixels = torch.rand(args.batch, 3, image, image, device=dev)
    # FLOPs are counted eagerly (the counter does not see inside compiled graphs)
    flops = {k: step_flops(make_step(m, teacher, dev, args.dtype, False), pixels)
             for k, m in (("bcos", bcos), ("plain", plain))}
    steps = {"bcos": make_step(bcos, teacher, dev, args.dtype, args.compile),
             "plain": make_step(plain, teacher, dev, args.dtype, args.compile)}
    for s in steps.values():
        timed(s, pixels, args.warmup, dev)
    rates = {k: [] for k in steps}
    for _ in range(args.rounds):  # interleaved rounds
        for k, s in steps.items():
            rates[k].append(timed(s, pixels, args.steps, dev))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "device": str(dev), "dtype": args.dtype, "model_size": args.model_size, "batch": args.batch,
        "image": image, "compile": args.compile, "sdpa": args.sdpa, "threads": torch.get_num_threads(),
        "img_per_s": med, "img_per_s_rounds": rates, "slowdown_plain_over_bcos": med["plain"] / med["bcos"],
        # each round times both variants back to back, so the per-round ratio cancels most load drift
        "slowdown_median_of_round_ratios": statistics.median(p / b for p, b in zip(rates["plain"], rates["bcos"])),
        "flops_per_step": flops,
    }
    if args.peak_tflops:
        result["mfu"] = {k: flops[k] * med[k] / args.batch / (args.peak_tflops * 1e12) for k in steps}
    print(json.dumps(result, indent=2))
    if args.out:
        from aloe.io import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
