"""Linear probe on cached features: DINOv2's protocol here, the ALOE authors' code's in
``aloe.eval.probe_aloe_code`` (config ``evaluation.linear_probe.protocol``; ``linear_probe`` runs either).
DINOv2 searches feature layouts too (``probe_layouts``): the class tokens of the last
n_last_blocks {1, 4} blocks, with and without the mean patch token, the best head of all.

All heads of the learning-rate grid train together: one weight matrix holding every head, two
GEMMs per step, and an analytic softmax cross-entropy gradient. torch.optim cannot give each
slice of one tensor its own learning rate, hence the few lines of hand-written SGD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from aloe.eval.features import layout_slice
from aloe.eval.probe_aloe_code import aloe_code_probe, bcos_head_logits
from aloe.progress import Progress

PROTOCOLS = ("dinov2", "aloe_code")
# DINOv2's grid (13 values), the LRs of a batch of 256.
DINOV2_LRS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1)
# The named grids config key ``evaluation.linear_probe.lrs`` may give instead of a list.
LR_GRIDS = {"dinov2": DINOV2_LRS}
# Protocol constant of the DINOv2 linear evaluation: every LR of the grid (named or listed) is
# scaled linearly with the batch, lr * batch_size / 256 (DINOv2's eval/linear.py scales its grid by
# the global batch over 256: 1024 / 256 = 4 with its launcher's 8 GPUs x 128). Not a config key: it
# belongs to the grid's definition, and the records state it (``params.scale_lrs_by_batch``).
SCALE_LRS_BY_BATCH = True
# DINOv2's eval/linear.py grid of feature layouts (n_last_blocks_list, avgpools): the defaults of
# config keys evaluation.linear_probe.n_last_blocks and .avgpool.
DINOV2_N_LAST_BLOCKS, DINOV2_AVGPOOLS = (1, 4), (False, True)


def cache_layout(n_last_blocks: Sequence[int], avgpools: Sequence[bool]) -> dict[str, Any]:
    """The feature cache that holds every layout of the grid: ``last_n`` and ``avgpool`` of
    ``aloe.eval.features.feature_spec``."""
    if not n_last_blocks or not avgpools or min(n_last_blocks) < 1:
        raise ValueError("config keys 'evaluation.linear_probe.n_last_blocks' / 'avgpool' need positive block "
                         f"counts and at least one avgpool choice, got {list(n_last_blocks)}, {list(avgpools)}")
    return {"last_n": max(n_last_blocks), "avgpool": any(avgpools)}


def layout_name(n_blocks: int, avgpool: bool) -> str:
    return f"last{n_blocks}" + ("+avgpool" if avgpool else "")


def probe_layouts(spec: Mapping[str, Any], n_last_blocks: Sequence[int], avgpools: Sequence[bool]
                  ) -> list[tuple[int, bool]]:
    """The grid's layouts a cache of ``spec`` holds, in DINOv2's order (n_last_blocks, then
    avgpool). A backbone without a class token (SigLIP) is cached with one block only, so its grid
    is (1, avgpool) for each avgpool choice."""
    layouts = [(n, a) for n in n_last_blocks for a in avgpools if n <= spec["last_n"] and (not a or spec["avgpool"])]
    if not layouts:
        raise ValueError(f"no layout of n_last_blocks {list(n_last_blocks)} x avgpool {list(avgpools)} "
                         f"is in a feature cache of {dict(spec)}")
    return list(dict.fromkeys(layouts))


def lr_grid(lrs: str | Sequence[float]) -> tuple[float, ...]:
    """The LR grid config ``evaluation.linear_probe.lrs`` names: a key of ``LR_GRIDS`` or the LRs."""
    if isinstance(lrs, str):
        if lrs not in LR_GRIDS:
            raise ValueError(f"config key 'evaluation.linear_probe.lrs': no LR grid {lrs!r}; "
                             f"give a list or one of {sorted(LR_GRIDS)}")
        return LR_GRIDS[lrs]
    return tuple(lrs)


@dataclass
class ProbeResult:
    test_top1: float  # percent
    best_lr: float  # the scaled learning rate of the chosen head
    val_top1: dict[float, float]  # scaled lr -> top-1 (percent) on the selection split (aloe_code: test)
    weight: torch.Tensor  # (D, C) of the chosen head
    bias: torch.Tensor  # (C,)
    params: dict = field(default_factory=dict)
    head: str = "linear"  # "linear" or "bcos" (B = 2, bias zero; aloe.eval.probe_aloe_code)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.head == "bcos":
            return bcos_head_logits(x.float(), self.weight)
        return x.float() @ self.weight + self.bias


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random split of range(n) into (train_idx, val_idx)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise ValueError(f"{n} training samples are too few for a {val_fraction:.0%} validation split")
    return perm[n_val:], perm[:n_val]


def _check(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: features must be (N, D) and labels (N,), got {tuple(x.shape)}, {tuple(y.shape)}")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x).all(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"{name}: NaN/inf features at sample indices {bad[:20]}")


def train_heads(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    lrs: torch.Tensor,
    *,
    iterations: int,
    batch_size: int,
    momentum: float = 0.9,
    seed: int = 0,
    init_std: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train len(lrs) linear heads at once with SGD + momentum, cosine schedule, no weight decay.

    The heads sit side by side in one (D, n_lr * C) matrix, so a step is two plain GEMMs
    (logits and weight gradient) whatever the grid size. Returns W (n_lr, D, C), b (n_lr, C).
    """
    gen = torch.Generator().manual_seed(seed)  # CPU generator: same draws on every device
    n, d = x.shape
    n_lr, c, dev = lrs.numel(), num_classes, x.device
    w = torch.randn(n_lr, d, c, generator=gen).mul_(init_std).permute(1, 0, 2).reshape(d, n_lr * c).to(dev)
    b = torch.zeros(n_lr * c, device=dev)
    vw, vb = torch.zeros_like(w), torch.zeros_like(b)
    lr_cols = lrs.float().repeat_interleave(c).to(dev)  # (n_lr * C,): each head's columns get its lr
    minus_one = torch.full((batch_size, n_lr, 1), -1.0, device=dev)
    ones = torch.ones(batch_size, device=dev)
    perm, pos = torch.randperm(n, generator=gen).to(dev), 0
    progress = Progress(f"linear probe ({n_lr} LRs, {n} samples)", iterations, unit="it")
    # Few fused kernels per step (it is launch-bound on GPU). The momentum buffers hold the
    # gradient times the batch size; the 1/m is folded into the step size, which is the same update.
    for it in range(iterations):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=gen).to(dev), 0
        idx = perm[pos : pos + batch_size]
        pos += batch_size
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        m = xb.shape[0]
        p = torch.softmax(torch.addmm(b, xb, w).view(m, n_lr, c), dim=-1)
        p.scatter_add_(2, yb.view(m, 1, 1).expand(m, n_lr, 1), minus_one[:m])  # d(CE)/d(logits) * m
        p = p.view(m, n_lr * c)
        vw.addmm_(xb.T, p, beta=momentum)
        vb.addmv_(p.T, ones[:m], beta=momentum)
        step = 0.5 * (1.0 + math.cos(math.pi * it / iterations)) / m
        w.addcmul_(vw, lr_cols, value=-step)
        b.addcmul_(vb, lr_cols, value=-step)
        progress.update()
    return w.view(d, n_lr, c).permute(1, 0, 2).contiguous(), b.view(n_lr, c)


def _top1(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Top-1 (percent) of every head: (n_lr,); w (n_lr, D, C), b (n_lr, C)."""
    n_lr, d, c = w.shape
    flat_w, flat_b = w.permute(1, 0, 2).reshape(d, n_lr * c), b.reshape(-1)
    correct = torch.zeros(n_lr, device=x.device)
    for s in range(0, x.shape[0], chunk):
        pred = torch.addmm(flat_b, x[s : s + chunk], flat_w).view(-1, n_lr, c).argmax(dim=-1)
        correct += (pred == y[s : s + chunk, None]).sum(dim=0)
    return correct.cpu() / x.shape[0] * 100.0


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    num_classes: int | None = None,
    lrs: str | Sequence[float] = "dinov2",
    scale_lrs_by_batch: bool = SCALE_LRS_BY_BATCH,
    iterations: int = 12500,
    batch_size: int = 1024,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    protocol: str = "dinov2",
    head: str = "linear",
    aloe_code: dict | None = None,
) -> ProbeResult:
    """Linear probe on cached features; returns the chosen head and its test top-1.

    ``protocol="dinov2"``: DINOv2's linear protocol, the best-on-val head of the LR grid. ``lrs`` is
    a named grid (``LR_GRIDS``) or the LRs, each scaled by batch_size / 256; ``iterations`` and
    ``batch_size`` default to DINOv2's 12.5k steps at its global batch 1024. ``protocol="aloe_code"``:
    ``aloe.eval.probe_aloe_code`` with ``head`` ("bcos" for students, "linear" for teachers) and the
    ``aloe_code`` settings (epochs, batch_size, lrs, weight_decay); ``lrs``, ``iterations``,
    ``batch_size`` and ``val_fraction`` are unused then. The chosen head comes back on the CPU.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"config key 'evaluation.linear_probe.protocol': {protocol!r} is not one of {PROTOCOLS}")
    train_x, test_x = train_x.to(device).float(), test_x.to(device).float()
    train_y, test_y = train_y.to(device).long(), test_y.to(device).long()
    _check(train_x, train_y, "train")
    _check(test_x, test_y, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train dim {train_x.shape[1]} != test dim {test_x.shape[1]}")
    if num_classes is None:
        num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    if protocol == "aloe_code":
        return _aloe_code(train_x, train_y, test_x, test_y, num_classes, head, dict(aloe_code or {}), seed)
    if head != "linear":
        raise ValueError(f"the dinov2 protocol trains linear heads, not {head!r}")
    lrs = lr_grid(lrs)
    tr, va = (i.to(device) for i in split_train_val(train_x.shape[0], val_fraction, seed))
    batch_size = min(batch_size, len(tr))
    scale = batch_size / 256.0 if scale_lrs_by_batch else 1.0
    lr_t = torch.tensor(lrs, dtype=torch.float32) * scale
    w, b = train_heads(
        train_x[tr], train_y[tr], num_classes, lr_t, iterations=iterations, batch_size=batch_size, seed=seed
    )
    val = _top1(train_x[va], train_y[va], w, b)
    best = int(val.argmax())  # ties go to the smallest learning rate
    test = _top1(test_x, test_y, w[best : best + 1], b[best : best + 1])[0]
    return ProbeResult(
        test_top1=float(test),
        best_lr=float(lr_t[best]),
        val_top1={float(lr): float(v) for lr, v in zip(lr_t, val)},
        weight=w[best].cpu().clone(),
        bias=b[best].cpu().clone(),
        params={
            "protocol": "dinov2", "head": "linear", "lrs": list(lrs), "scale_lrs_by_batch": scale_lrs_by_batch,
            "iterations": iterations,
            "batch_size": batch_size, "val_fraction": val_fraction, "seed": seed,
            "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine",
        },
    )


def _aloe_code(train_x, train_y, test_x, test_y, num_classes: int, head: str, settings: dict,
               seed: int) -> ProbeResult:
    r = aloe_code_probe(train_x, train_y, test_x, test_y, num_classes=num_classes, head=head, seed=seed, **settings)
    params = {"protocol": "aloe_code", "head": head, **settings, "seed": seed, "optimizer": "adamw",
              "schedule": "onecycle", "selected_on": "test", "best_epoch": r["best_epoch"]}
    return ProbeResult(test_top1=r["test_top1"], best_lr=r["best_lr"], val_top1=r["top1_by_lr"],
                       weight=r["weight"], bias=r["bias"], params=params, head=head)


def linear_probe_layouts(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    spec: Mapping[str, Any],
    *,
    n_last_blocks: Sequence[int] = DINOV2_N_LAST_BLOCKS,
    avgpools: Sequence[bool] = DINOV2_AVGPOOLS,
    **kwargs: Any,
) -> tuple[ProbeResult, ProbeResult]:
    """DINOv2's linear evaluation over feature layouts: ``linear_probe`` (protocol dinov2) on each
    layout of ``probe_layouts`` (the same split, seed and LR grid), and the head of the best
    validation top-1 over every (layout, LR) (ties: the earlier layout, then the smaller LR).
    ``train_x``/``test_x`` are a cache's global features (``spec``: its feature_spec). Returns
    (the best result, the best result of layout (1, False)): the second is the head on
    ``pooler_output`` that the explanation stages classify with (``aloe.eval.classifier``)."""
    layouts = probe_layouts(spec, n_last_blocks, avgpools)
    if (1, False) not in layouts:  # checked before any head trains
        raise ValueError("config keys 'evaluation.linear_probe.n_last_blocks' / 'avgpool' must include 1 and false: "
                         "the explanation stages classify with the head on pooler_output (1 block, no avgpool)")
    results = {}
    for n, avg in layouts:
        cols = torch.tensor(layout_slice(spec, n, avg, train_x.shape[1]))
        results[(n, avg)] = linear_probe(train_x[:, cols], train_y, test_x[:, cols], test_y, protocol="dinov2",
                                         **kwargs)
    best_layout = max(results, key=lambda k: max(results[k].val_top1.values()))  # max keeps the first of ties
    best = results[best_layout]
    grid = {layout_name(*k): {str(lr): v for lr, v in r.val_top1.items()} for k, r in results.items()}
    best.params = {**best.params, "layouts": [layout_name(*k) for k in results],
                   "best_layout": layout_name(*best_layout), "val_top1_by_layout": grid}
    return best, results[(1, False)]
