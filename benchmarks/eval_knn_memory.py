"""Peak memory of aloe.eval.knn over a large synthetic fp16 bank (default 1.28M x 768, 50k
queries). Reports host peak RSS above the RSS with bank and queries resident (and, on CUDA,
peak GPU memory above the bank). The bank is generated in chunks so generation adds little.

python3 benchmarks/eval_knn_memory.py [--bank 1281167 --queries 50000 --dim 768] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch
from eval_common import machine

from aloe.eval.knn import knn_predict


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", type=int, default=1281167)
    ap.add_argument("--queries", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--query-chunk", type=int, default=1024)
    ap.add_argument("--bank-chunk", type=int, default=65536)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    bank = torch.empty(args.bank, args.dim, dtype=torch.float16)
    for s in range(0, args.bank, 16384):
        bank[s : s + 16384] = torch.randn(min(16384, args.bank - s), args.dim, generator=g)
    labels = torch.randint(0, args.classes, (args.bank,), generator=g)
    queries = torch.randn(args.queries, args.dim, generator=g).half()
    cuda = args.device.startswith("cuda")
    if cuda:
        bank = bank.to(args.device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        gpu_base = torch.cuda.memory_allocated() / 2**30
    base = rss_gib()
    bank_gib = bank.numel() * 2 / 2**30
    t0 = time.perf_counter()
    pred = knn_predict(bank, labels, queries, k=20, temperature=0.07, num_classes=args.classes,
                       query_chunk=args.query_chunk, bank_chunk=args.bank_chunk, device=args.device)
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"machine: {machine()}; device {args.device}; bank {args.bank} x {args.dim} fp16 = {bank_gib:.2f} GiB, "
          f"{args.queries} queries, query_chunk {args.query_chunk}, bank_chunk {args.bank_chunk}")
    print(f"time {dt:.1f}s ({args.queries / dt:.0f} queries/s); predictions {pred.shape[0]}")
    print(f"host RSS with bank+queries resident {base:.2f} GiB; peak RSS {peak_rss_gib():.2f} GiB; "
          f"peak above resident {peak_rss_gib() - base:.2f} GiB")
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"GPU: bank {gpu_base:.2f} GiB allocated; peak {peak:.2f} GiB; peak above bank {peak - gpu_base:.2f} GiB")


if __name__ == "__main__":
    main()
