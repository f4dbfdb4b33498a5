"""Depth and surface-normal metrics of the Probe3D protocol (El Banani et al., CVPR 2024, "Probing the
3D Awareness of Visual Foundation Models"; github.com/mbanani/probe3d), as the paper uses it (App. A)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_DEPTH = 1e-3  # lower end of Probe3D's depth range; aligned predictions are clamped to it


def align_scale_shift(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-image least-squares s, t minimising ||s * pred + t - gt||^2 on valid pixels.

    pred, gt, valid: (N, H, W). Returns s * pred + t for every pixel.
    """
    m = valid.to(pred.dtype)
    n = m.sum(dim=(1, 2)).clamp_min(1)
    sp, sg = (m * pred).sum((1, 2)), (m * gt).sum((1, 2))
    spp, spg = (m * pred * pred).sum((1, 2)), (m * pred * gt).sum((1, 2))
    det = n * spp - sp * sp
    ok = det.abs() > 1e-12
    s = torch.where(ok, (n * spg - sp * sg) / torch.where(ok, det, torch.ones_like(det)), torch.ones_like(det))
    t = torch.where(ok, (sg - s * sp) / n, torch.zeros_like(det))
    return s[:, None, None] * pred + t[:, None, None]


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float]:
    """delta1..3 and RMSE (metres), absolute and relative (after per-image scale and shift).

    Each metric is computed per image on its valid pixels (default gt > 0), then averaged over
    images. Images without a valid pixel raise an error naming their index.
    """
    if pred.ndim == 4:
        pred, gt = pred[:, 0], gt[:, 0]
        valid = None if valid is None else valid[:, 0]
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"depth pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must be equal (N, H, W)")
    pred, gt = pred.double(), gt.double()
    valid = (gt > 0) if valid is None else valid.bool() & (gt > 0)
    empty = (valid.sum((1, 2)) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"depth images without valid ground-truth pixels: indices {empty[:20]}")
    out: dict[str, float] = {}
    for kind, p in (("abs", pred), ("rel", align_scale_shift(pred, gt, valid))):
        p = p.clamp_min(MIN_DEPTH)
        m = valid.double()
        n = m.sum((1, 2))
        ratio = torch.maximum(gt / p, p / gt.clamp_min(MIN_DEPTH))
        for k in (1, 2, 3):
            out[f"{kind}_delta{k}"] = float((((ratio < 1.25**k) * m).sum((1, 2)) / n).mean())
        out[f"{kind}_rmse"] = float((((p - gt) ** 2 * m).sum((1, 2)) / n).sqrt().mean())
    return out


def angular_error_deg(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-pixel angle (degrees) between (N, 3, H, W) normal fields; inputs need not be unit."""
    cos = (F.normalize(pred.double(), dim=1) * F.normalize(gt.double(), dim=1)).sum(dim=1)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def normal_metrics(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float]:
    """% of valid pixels under 11.25 / 22.5 / 30 degrees and RMSE in degrees.

    Pooled over all valid pixels of all images (default valid: gt has non-zero length).
    """
    if pred.shape != gt.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"normal pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must be equal (N, 3, H, W)")
    gt_valid = gt.norm(dim=1) > 0
    valid = gt_valid if valid is None else (valid.reshape(gt_valid.shape).bool() & gt_valid)
    if not valid.any():
        raise ValueError("no valid normal ground-truth pixel")
    err = angular_error_deg(pred, gt)[valid]
    out = {f"pct_under_{t}": float((err < t).double().mean() * 100.0) for t in (11.25, 22.5, 30)}
    out["rmse_deg"] = float(math.sqrt(float((err**2).mean())))
    return out
