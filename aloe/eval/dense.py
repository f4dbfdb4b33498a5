"""Probe3D-style dense probes on frozen patch features: depth and surface normals.

Two heads (config ``evaluation.dense.head``):

- ``linear`` (default; the paper's wording "linear head"): BatchNorm + a 1x1 convolution on the
  concatenated patch features of the chosen blocks, bilinearly upsampled to the label size.
  Depth is regressed directly in log space (``to_depth``, no bins); normals use a plain angular
  loss.
- ``dpt`` (Probe3D's code default; ``aloe.eval.dense_dpt``): a DPT head over the blocks (the
  channels split into ``num_blocks`` equal groups, in block order), depth as 256 bins on
  [0.001, 10] m (``bins_to_depth``), normals with a concentration kappa trained with the
  uncertainty-aware angular loss of Bae et al. (``uncertainty_angular_loss``); predictions use
  the normalised normal channels.

Both heads train depth with Probe3D's loss 10 * SigLoss + 0.5 * gradient loss
(``evals/utils/losses.py`` there), and the normals on Probe3D's valid pixels (depth > 0, when the
depth is given).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aloe.eval.dense_dpt import DPTDenseHead, uncertainty_angular_loss
from aloe.eval.dense_metrics import depth_metrics, normal_metrics
from aloe.lr_schedule import warmup_cosine
from aloe.progress import Progress

MIN_DEPTH, MAX_DEPTH = 1e-3, 10.0  # Probe3D's depth range (the probe's output range)
GRADIENT_STRIDES = (1, 2, 4, 6)  # Probe3D subsamples by 1, then 2 * i for i = 1, 2, 3
GRADIENT_EPS = 1e-3
HEADS = ("linear", "dpt")


class LinearDenseHead(nn.Module):
    """BatchNorm + 1x1 conv (an affine map per pixel at test time, like DINOv2's linear depth head)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.conv(self.norm(feats)), size=size, mode="bilinear", align_corners=False)


def make_head(head: str, in_channels: int, task: str, num_blocks: int = 1, *, hidden_dim: int = 512) -> nn.Module:
    """The dense head: ``linear`` (one 1x1 conv) or ``dpt`` (Probe3D's DPT over ``num_blocks``
    equal channel groups, one per block in channel order; ``hidden_dim`` is its width, 512 in
    Probe3D, and the linear head ignores it)."""
    if head not in HEADS:
        raise ValueError(f"dense probe head {head!r} is not implemented; available: {HEADS}")
    if head == "dpt":
        if num_blocks < 2 or in_channels % num_blocks:
            raise ValueError(
                f"evaluation.dense.head: dpt needs the features of >= 2 blocks with equal widths (num_blocks = "
                f"len(blocks)); got {in_channels} channels for num_blocks={num_blocks}. Use head: linear for one block"
            )
        return DPTDenseHead(in_channels, num_blocks, task, hidden_dim=hidden_dim, min_depth=MIN_DEPTH,
                            max_depth=MAX_DEPTH)
    return LinearDenseHead(in_channels, 1 if task == "depth" else 3)


def to_depth(raw: torch.Tensor) -> torch.Tensor:
    """Head output -> depth in [MIN_DEPTH, MAX_DEPTH] metres (sigmoid in log-depth space)."""
    lo, hi = math.log(MIN_DEPTH), math.log(MAX_DEPTH)
    return torch.exp(lo + (hi - lo) * torch.sigmoid(raw))


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, lam: float = 0.85) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al.), as Probe3D's SigLoss: sqrt(E[g^2] - lam E[g]^2)."""
    g = (torch.log(pred.clamp_min(MIN_DEPTH)) - torch.log(gt.clamp_min(MIN_DEPTH)))[valid]
    return torch.sqrt((g**2).mean() - lam * g.mean() ** 2 + 1e-8)


def gradient_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Probe3D's multi-scale gradient loss on the log-depth residual (after MegaDepth).

    At each stride k in GRADIENT_STRIDES both maps are subsampled (``[..., ::k, ::k]``) and
    r = (log(pred + eps) - log(gt + eps)) * valid; the term of that scale is
    (sum |r[i, j] - r[i, j + 2]| + sum |r[i, j] - r[i + 2, j]|) / N, each difference counted where
    both of its pixels are valid and N the number of valid pixels of the whole batch at that
    scale (Probe3D's differences skip one pixel, and it normalises by pixels, not by pairs). The
    loss is the sum of the terms. Valid: gt > 0 (and ``valid`` if given); a scale without valid
    pixels adds 0 where Probe3D would divide by zero.
    """
    mask = gt > 0 if valid is None else valid.bool() & (gt > 0)
    total = pred.new_zeros(())
    for k in GRADIENT_STRIDES:
        p, g, m = pred[..., ::k, ::k], gt[..., ::k, ::k], mask[..., ::k, ::k]
        r = (torch.log(p + GRADIENT_EPS) - torch.log(g.clamp_min(0) + GRADIENT_EPS)) * m
        gx = (r[..., :, :-2] - r[..., :, 2:]).abs() * (m[..., :, :-2] & m[..., :, 2:])
        gy = (r[..., :-2, :] - r[..., 2:, :]).abs() * (m[..., :-2, :] & m[..., 2:, :])
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp_min(1)
    return total


def angular_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between predicted and true normals on valid pixels."""
    cos = (F.normalize(pred, dim=1) * F.normalize(gt, dim=1)).sum(dim=1)
    return torch.arccos(cos.clamp(-1 + 1e-6, 1 - 1e-6))[valid].mean()


def _depth(model: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Head output -> depth in metres (the DPT head already outputs depth from its bins)."""
    return out if isinstance(model, DPTDenseHead) else to_depth(out)


def _loss(
    model: nn.Module, task: str, out: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
) -> torch.Tensor:
    if task == "depth":
        valid = target > 0
        pred = _depth(model, out)
        return 10.0 * silog_loss(pred, target, valid) + 0.5 * gradient_loss(pred, target, valid)
    mask = target.norm(dim=1) > 0 if valid is None else valid[:, 0] > 0
    if isinstance(model, DPTDenseHead):
        return uncertainty_angular_loss(out, target, mask)
    return angular_loss(out, target, mask)


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
    num_blocks: int = 1,
    hidden_dim: int = 512,
    epochs: int = 10,
    batch_size: int = 8,
    lr: float = 5e-4,
    weight_decay: float = 0.01,
    warmup_epochs: float = 1.5,
    final_lr_fraction: float = 0.01,
    seed: int = 0,
    device: str | torch.device = "cpu",
    valid: torch.Tensor | None = None,
) -> nn.Module:
    """Train a dense head on frozen (N, D, h, w) features against (N, 1|3, H, W) targets.

    AdamW with linear warm-up and cosine decay to ``final_lr_fraction * lr`` (Probe3D schedule).
    Depth targets <= 0 are invalid pixels. For normals ``valid`` (N, 1, H, W) marks the valid
    pixels (Probe3D: the ground-truth depth > 0; the depth itself may be passed); without it,
    zero-length normals are the invalid ones. ``head="dpt"`` needs ``num_blocks`` (the number of
    blocks concatenated along the channels, >= 2) and uses ``hidden_dim`` as its width.
    """
    _check_task(task, targets)
    if feats.shape[0] != targets.shape[0]:
        raise ValueError(f"{feats.shape[0]} feature maps but {targets.shape[0]} targets")
    torch.manual_seed(seed)
    model = make_head(head, feats.shape[1], task, num_blocks, hidden_dim=hidden_dim).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(feats.shape[0] / batch_size)
    factor = probe_lr_factor(steps_per_epoch, epochs, warmup_epochs, final_lr_fraction)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    gen = torch.Generator().manual_seed(seed)
    size = tuple(targets.shape[-2:])
    model.train()
    progress = Progress(f"dense probe {task} ({head} head)", epochs * steps_per_epoch, unit="steps")
    for _ in range(epochs):
        for idx in torch.randperm(feats.shape[0], generator=gen).split(batch_size):
            mask = None if valid is None else valid[idx].to(device)
            loss = _loss(model, task, model(feats[idx].to(device).float(), size), targets[idx].to(device).float(), mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            progress.update()
    return model.eval()


@torch.no_grad()
def predict_dense(
    model: nn.Module, feats: torch.Tensor, size: Sequence[int], task: str, batch_size: int = 32
) -> torch.Tensor:
    """Dense predictions on the CPU: depth in metres or unit normals (a DPT head's kappa dropped)."""
    dev = next(model.parameters()).device
    outs = [
        model(feats[s : s + batch_size].to(dev).float(), tuple(size)).cpu()
        for s in range(0, feats.shape[0], batch_size)
    ]
    out = torch.cat(outs)
    return _depth(model, out) if task == "depth" else F.normalize(out[:, :3], dim=1)


def evaluate_dense_probe(
    train_feats: torch.Tensor,
    train_targets: torch.Tensor,
    test_feats: torch.Tensor,
    test_targets: torch.Tensor,
    task: str,
    *,
    train_depth: torch.Tensor | None = None,
    test_depth: torch.Tensor | None = None,
    num_blocks: int = 1,
    **train_kwargs,
) -> dict[str, float]:
    """Train on train, return the test metrics (depth_metrics or normal_metrics keys).

    ``train_depth``/``test_depth`` (N, 1, H, W): the ground-truth depth, whose pixels > 0 are
    Probe3D's valid pixels of the normals task (loss and metrics). ``num_blocks``: the number of
    blocks concatenated along the feature channels (needed by ``head="dpt"``).
    """
    _check_task(task, test_targets)
    if task == "normals" and train_depth is not None:
        train_kwargs["valid"] = train_depth > 0
    model = train_dense_probe(train_feats, train_targets, task, num_blocks=num_blocks, **train_kwargs)
    pred = predict_dense(model, test_feats, test_targets.shape[-2:], task)
    if task == "depth":
        return depth_metrics(pred, test_targets.float())
    return normal_metrics(pred, test_targets.float(), None if test_depth is None else test_depth > 0)
