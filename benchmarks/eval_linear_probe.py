"""Linear probe (aloe.eval.linear_probe, 13-LR grid in one pass) vs scikit-learn
LogisticRegression (lbfgs, default C) on the same cached features: time until our probe's test
top-1 equals or beats scikit-learn's. Rounds interleave the two so machine load hits both.

python3 benchmarks/eval_linear_probe.py [--n-train 20000 --dim 768 --classes 100 --rounds 2]
    [--device cuda] [--threads N] [--anisotropic]

scikit-learn always runs on the CPU with --threads BLAS threads; --device moves our probe.
--anisotropic rescales feature dimensions (log-normal scales, a few massive dimensions, offsets)
the way real ViT features are badly conditioned.
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
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from aloe.eval.linear_probe import linear_probe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--spread", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000, 8000, 12500])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--anisotropic", action="store_true")
    args = ap.parse_args()
    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as d:
        torch.set_num_threads(args.threads)
        xtr, ytr, xte, yte = cached_pair(Path(d), args.n_train, args.n_test, args.dim, args.classes, args.spread,
                                         anisotropic=args.anisotropic)
        print(f"machine: {machine()}; ours on {args.device}; features {args.n_train}+{args.n_test} x {args.dim} "
              f"fp16, {args.classes} classes, anisotropic={args.anisotropic}")
        ratios = []
        for rnd in range(args.rounds):
            t0 = time.perf_counter()
            sk = LogisticRegression(max_iter=1000).fit(xtr.float().numpy(), ytr.numpy())
            sk_time = time.perf_counter() - t0
            sk_acc = 100.0 * float(np.mean(sk.predict(xte.float().numpy()) == yte.numpy()))
            print(f"round {rnd}: sklearn lbfgs {sk_time:.2f}s, {int(sk.n_iter_[0])} iters, test top-1 {sk_acc:.2f}")
            ours_time = None
            for it in args.iterations:
                t0 = time.perf_counter()
                r = linear_probe(xtr, ytr, xte, yte, iterations=it, batch_size=128, device=args.device)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                print(f"  aloe LP {it} iters x 13 lrs: {dt:.2f}s, test top-1 {r.test_top1:.2f} (lr {r.best_lr:.2e})")
                if r.test_top1 >= sk_acc:
                    ours_time = dt
                    break
            if ours_time is None:
                print("  aloe LP did not reach sklearn's accuracy within the iteration budget")
                continue
            ratios.append(sk_time / ours_time)
            print(f"  ratio sklearn / aloe = {ratios[-1]:.1f}x")
        if ratios:
            print(f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
