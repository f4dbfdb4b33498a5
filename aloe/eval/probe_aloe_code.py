"""Linear probe of the ALOE authors' released code (config ``evaluation.linear_probe.protocol:
aloe_code``; the README's protocol ledger), on cached features.

One head per learning rate, all trained together (each its own AdamW parameter group): a B-cos
head (B = 2, no bias; ``aloe.bcos.BcosLinear``) on a B-cos student's features, a linear head with
bias on a teacher's. AdamW with weight decay, torch's OneCycle schedule (its defaults: 30 %
warm-up from max_lr / 25, cosine annealing, momentum cycling) over ``epochs`` passes at
``batch_size`` (the last batch of an epoch may be smaller), cross-entropy. After every epoch each
head is scored on the evaluation (test) split, and the (epoch, LR) with the best score is the
result: the selection is made on the split that is reported, as in that code, not on a share
carved from train (the ``dinov2`` protocol, ``aloe.eval.linear_probe``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from aloe.bcos import BcosLinear
from aloe.progress import Progress

HEADS = ("linear", "bcos")


def probe_head(variant: str) -> str:
    """The head the authors' code puts on a backbone: linear for teachers, B-cos for students."""
    return "linear" if variant == "teacher" else "bcos"


def bcos_head_logits(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Logits of a saved B-cos head (``weight`` (D, C), as the probe returns it) on features x (N, D)."""
    layer = BcosLinear(weight.shape[0], weight.shape[1], b=2.0).to(x.device, x.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight.T)
    return layer(x)


def _heads(head: str, d: int, c: int, n: int) -> nn.ModuleList:
    if head not in HEADS:
        raise ValueError(f"probe head must be one of {HEADS}, got {head!r}")
    if head == "bcos":
        return nn.ModuleList(BcosLinear(d, c, b=2.0) for _ in range(n))
    return nn.ModuleList(nn.Linear(d, c) for _ in range(n))


def _top1(module: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> float:
    correct = 0
    with torch.no_grad():
        for s in range(0, x.shape[0], chunk):
            correct += int((module(x[s : s + chunk]).argmax(1) == y[s : s + chunk]).sum())
    return correct / x.shape[0] * 100.0


def aloe_code_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    num_classes: int,
    head: str,
    lrs: Sequence[float] = (1e-2, 3e-3, 1e-3),
    epochs: int = 50,
    batch_size: int = 8192,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> dict:
    """Train the heads; returns test_top1 (best over epochs and LRs), best_lr, best_epoch
    (1-based), the per-LR best scores (``top1_by_lr``), and the chosen head as weight (D, C) and
    bias (C,) (zeros for a B-cos head) on the CPU. Tensors are expected on one device."""
    n, d = train_x.shape
    dev = train_x.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = _heads(head, d, num_classes, len(lrs)).to(dev)
    opt = torch.optim.AdamW([{"params": h.parameters(), "lr": lr} for h, lr in zip(heads, lrs)],
                            weight_decay=weight_decay)
    steps_per_epoch = math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=list(lrs), epochs=epochs, steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    best = (-1.0, 0, 0)  # (top-1, epoch, head index)
    best_state: dict[str, torch.Tensor] = {}
    top1_by_lr = [0.0] * len(lrs)
    progress = Progress(f"linear probe aloe_code ({head} head, {len(lrs)} LRs)", epochs, unit="epochs")
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=gen).to(dev)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            xb, yb = train_x[idx], train_y[idx]
            loss = sum(nn.functional.cross_entropy(h(xb), yb) for h in heads)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        for i, h in enumerate(heads):
            acc = _top1(h, test_x, test_y)
            top1_by_lr[i] = max(top1_by_lr[i], acc)
            if acc > best[0]:  # ties keep the earlier epoch, then the earlier LR
                best = (acc, epoch, i)
                best_state = {k: v.detach().cpu().clone() for k, v in h.state_dict().items()}
        progress.update(best_top1=best[0])
    acc, epoch, i = best
    weight = best_state["weight"].T.contiguous()  # (D, C), as the dinov2 heads
    bias = best_state.get("bias", torch.zeros(num_classes))
    return {"test_top1": acc, "best_lr": float(lrs[i]), "best_epoch": epoch,
            "top1_by_lr": {float(lr): v for lr, v in zip(lrs, top1_by_lr)}, "weight": weight, "bias": bias}
