"""k-NN (aloe.eval.knn, chunked) vs scikit-learn KNeighborsClassifier(algorithm="brute",
metric="cosine", weights=exp(sim / T)) on the same cached features: identical predictions
required, then the time ratio. Rounds interleave the two.

python3 benchmarks/eval_knn.py [--n-train 50000 --n-test 10000 --dim 768 --classes 100]
    [--device cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from eval_common import cached_pair, machine
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from aloe.eval.knn import knn_predict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--spread", type=float, default=6.0)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--temperature", type=float, default=0.07)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    t = args.temperature
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as d:
        torch.set_num_threads(args.threads)
        xtr, ytr, xte, yte = cached_pair(Path(d), args.n_train, args.n_test, args.dim, args.classes, args.spread)
        print(f"machine: {machine()}; ours on {args.device}; bank {args.n_train} x {args.dim} fp16, "
              f"{args.n_test} queries, k={args.k}, T={t}")
        xtr_np, xte_np = xtr.float().numpy(), xte.float().numpy()
        ratios = []
        for rnd in range(args.rounds):
            t0 = time.perf_counter()
            sk = KNeighborsClassifier(n_neighbors=args.k, algorithm="brute", metric="cosine",
                                      weights=lambda dist: np.exp((1.0 - dist) / t))
            sk_pred = sk.fit(xtr_np, ytr.numpy()).predict(xte_np)
            sk_time = time.perf_counter() - t0
            t0 = time.perf_counter()
            bank = xtr.to(args.device)  # the transfer counts: the cache lives on disk / host
            ours = knn_predict(bank, ytr, xte, k=args.k, temperature=t, num_classes=args.classes, device=args.device)
            ours_time = time.perf_counter() - t0
            same = int((ours.numpy() == sk_pred).sum())
            ratios.append(sk_time / ours_time)
            acc = 100.0 * float((ours == yte).float().mean())
            print(f"round {rnd}: sklearn {sk_time:.2f}s, aloe {ours_time:.2f}s, ratio {ratios[-1]:.1f}x; "
                  f"identical predictions {same}/{len(sk_pred)}; top-1 {acc:.2f}")
        print(f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
