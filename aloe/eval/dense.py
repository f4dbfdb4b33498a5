"""Probe3D-style dense probes on frozen patch features: depth and surface normals.

Head: a 1x1 convolution ("linear") on the concatenated patch features of the chosen blocks,
bilinearly upsampled to the label size. The paper's wording is a linear head; Probe3D's code
defaults to a DPT head with 256 depth bins, which is not implemented here (head="dpt" raises).
Depth is regressed directly in log space (no bins). Normals use a plain angular loss; Probe3D's
uncertainty-aware variant is not implemented.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aloe.eval.dense_metrics import MIN_DEPTH, depth_metrics, normal_metrics
from aloe.lr_schedule import warmup_cosine

MAX_DEPTH = 10.0
HEADS = ("linear",)


class LinearDenseHead(nn.Module):
    """BatchNorm + 1x1 conv (an affine map per pixel at test time, like DINOv2's linear depth head)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.conv(self.norm(feats)), size=size, mode="bilinear", align_corners=False)


def make_head(head: str, in_channels: int, task: str) -> nn.Module:
    if head not in HEADS:
        raise ValueError(f"dense probe head {head!r} is not implemented; available: {HEADS}")
    return LinearDenseHead(in_channels, 1 if task == "depth" else 3)


def to_depth(raw: torch.Tensor) -> torch.Tensor:
    """Head output -> depth in [MIN_DEPTH, MAX_DEPTH] metres (sigmoid in log-depth space)."""
    lo, hi = math.log(MIN_DEPTH), math.log(MAX_DEPTH)
    return torch.exp(lo + (hi - lo) * torch.sigmoid(raw))


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, lam: float = 0.85) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al.), as Probe3D's SigLoss: sqrt(E[g^2] - lam E[g]^2)."""
    g = (torch.log(pred.clamp_min(MIN_DEPTH)) - torch.log(gt.clamp_min(MIN_DEPTH)))[valid]
    return torch.sqrt((g**2).mean() - lam * g.mean() ** 2 + 1e-8)


def gradient_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient matching loss on log depth (MiDaS / Probe3D)."""
    d = torch.log(pred.clamp_min(MIN_DEPTH)) - torch.log(gt.clamp_min(MIN_DEPTH))
    d, m = d * valid, valid.float()
    total = pred.new_zeros(())
    for s in range(scales):
        step = 2**s
        ds, ms = d[..., ::step, ::step], m[..., ::step, ::step]
        mx, my = ms[..., :, 1:] * ms[..., :, :-1], ms[..., 1:, :] * ms[..., :-1, :]
        gx = (ds[..., :, 1:] - ds[..., :, :-1]).abs() * mx
        gy = (ds[..., 1:, :] - ds[..., :-1, :]).abs() * my
        total = total + (gx.sum() + gy.sum()) / (mx.sum() + my.sum()).clamp_min(1)
    return total


def angular_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between predicted and true normals on valid pixels."""
    cos = (F.normalize(pred, dim=1) * F.normalize(gt, dim=1)).sum(dim=1)
    return torch.arccos(cos.clamp(-1 + 1e-6, 1 - 1e-6))[valid].mean()


def _loss(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task == "depth":
        valid = target > 0
        pred = to_depth(out)
        return 10.0 * silog_loss(pred, target, valid) + 0.5 * gradient_loss(pred, target, valid)
    return angular_loss(out, target, target.norm(dim=1) > 0)


def _check_task(task: str, targets: torch.Tensor) -> None:
    want = {"depth": 1, "normals": 3}
    if task not in want:
        raise ValueError(f"dense task must be 'depth' or 'normals', got {task!r}")
    if targets.ndim != 4 or targets.shape[1] != want[task]:
        raise ValueError(f"{task} targets must be (N, {want[task]}, H, W), got {tuple(targets.shape)}")


def probe_lr_factor(
    steps_per_epoch: int, epochs: int, warmup_epochs: float, final_lr_fraction: float
) -> Callable[[int], float]:
    """The probes' LR multiplier per step: linear warm-up over ``warmup_epochs`` (at least one
    step), then cosine to ``final_lr_fraction`` at the end of training (Probe3D schedule)."""
    total, warm = epochs * steps_per_epoch, max(1, int(warmup_epochs * steps_per_epoch))
    return partial(warmup_cosine, warmup_steps=warm, decay_start=warm, total_steps=total, min_factor=final_lr_fraction)


def train_dense_probe(
    feats: torch.Tensor,
    targets: torch.Tensor,
    task: str,
    *,
    head: str = "linear",
    epochs: int = 10,
    batch_size: int = 8,
    lr: float = 5e-4,
    weight_decay: float = 0.01,
    warmup_epochs: float = 1.5,
    final_lr_fraction: float = 0.01,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Train a dense head on frozen (N, D, h, w) features against (N, 1|3, H, W) targets.

    AdamW with linear warm-up and cosine decay to ``final_lr_fraction * lr`` (Probe3D schedule).
    Depth targets <= 0 and zero-length normals are treated as invalid pixels.
    """
    _check_task(task, targets)
    if feats.shape[0] != targets.shape[0]:
        raise ValueError(f"{feats.shape[0]} feature maps but {targets.shape[0]} targets")
    torch.manual_seed(seed)
    model = make_head(head, feats.shape[1], task).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(feats.shape[0] / batch_size)
    factor = probe_lr_factor(steps_per_epoch, epochs, warmup_epochs, final_lr_fraction)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    gen = torch.Generator().manual_seed(seed)
    size = tuple(targets.shape[-2:])
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(feats.shape[0], generator=gen).split(batch_size):
            loss = _loss(task, model(feats[idx].to(device).float(), size), targets[idx].to(device).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict_dense(
    model: nn.Module, feats: torch.Tensor, size: Sequence[int], task: str, batch_size: int = 32
) -> torch.Tensor:
    """Dense predictions on the CPU: depth in metres or unit normals."""
    dev = next(model.parameters()).device
    outs = [
        model(feats[s : s + batch_size].to(dev).float(), tuple(size)).cpu()
        for s in range(0, feats.shape[0], batch_size)
    ]
    out = torch.cat(outs)
    return to_depth(out) if task == "depth" else F.normalize(out, dim=1)


def evaluate_dense_probe(
    train_feats: torch.Tensor,
    train_targets: torch.Tensor,
    test_feats: torch.Tensor,
    test_targets: torch.Tensor,
    task: str,
    **train_kwargs,
) -> dict[str, float]:
    """Train on train, return the test metrics (depth_metrics or normal_metrics keys)."""
    _check_task(task, test_targets)
    model = train_dense_probe(train_feats, train_targets, task, **train_kwargs)
    pred = predict_dense(model, test_feats, test_targets.shape[-2:], task)
    if task == "depth":
        return depth_metrics(pred, test_targets.float())
    return normal_metrics(pred, test_targets.float())
