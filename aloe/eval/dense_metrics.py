"""Depth and surface-normal metrics of the Probe3D protocol (El Banani et al., CVPR 2024, "Probing the
3D Awareness of Visual Foundation Models"; github.com/mbanani/probe3d, ``evals/utils/metrics.py``),
as the paper uses it (App. A). Written from that protocol's definitions:

- every metric is computed per image over its valid pixels, then averaged over images (never pooled
  over the pixels of all images);
- valid pixels: ground-truth depth > 0, for normals too (Probe3D's normal mask is ``depth > 0``);
- delta_k and the normal thresholds are fractions in [0, 1] (Probe3D reports fractions); RMSE is in
  metres for depth and degrees for normals;
- the "relative" depth metrics use the per-image least-squares scale and shift of the prediction,
  unclamped (an aligned value may be <= 0; such a pixel fails every delta threshold and counts its
  full error in RMSE). The delta ratio divides by max(value, 1e-9), as Probe3D does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RATIO_FLOOR = 1e-9  # denominator floor of the delta ratio max(gt / pred, pred / gt)
NORMAL_THRESHOLDS = (11.25, 22.5, 30)


def align_scale_shift(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-image least-squares s, t minimising ||s * pred + t - gt||^2 on valid pixels.

    pred, gt, valid: (N, H, W). Returns s * pred + t for every pixel (s = 1, t = 0 where the
    system is singular).
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


def _require_pixels(mask: torch.Tensor, what: str) -> torch.Tensor:
    """``mask`` (N, H, W) bool, after checking that every image has a valid pixel."""
    empty = (mask.sum((1, 2)) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"{what} images without valid ground-truth pixels: indices {empty[:20]}")
    return mask


def _per_image_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) mean of (N, H, W) ``values`` over each image's valid pixels."""
    m = mask.to(values.dtype)
    return (values * m).sum((1, 2)) / m.sum((1, 2))


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float]:
    """delta1..3 (fractions) and RMSE (metres), absolute and relative (after per-image scale and
    shift), each per image on its valid pixels (gt > 0, and ``valid`` if given), averaged over images.
    Images without a valid pixel raise an error naming their index."""
    if pred.ndim == 4:
        pred, gt = pred[:, 0], gt[:, 0]
        valid = None if valid is None else valid[:, 0]
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"depth pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must be equal (N, H, W)")
    pred, gt = pred.double(), gt.double()
    mask = _require_pixels(gt > 0 if valid is None else valid.reshape(gt.shape).bool() & (gt > 0), "depth")
    out: dict[str, float] = {}
    for kind, p in (("abs", pred), ("rel", align_scale_shift(pred, gt, mask))):
        ratio = torch.maximum(gt / p.clamp_min(RATIO_FLOOR), p / gt.clamp_min(RATIO_FLOOR))
        for k in (1, 2, 3):
            out[f"{kind}_delta{k}"] = float(_per_image_mean((ratio < 1.25**k).double(), mask).mean())
        out[f"{kind}_rmse"] = float(_per_image_mean((p - gt) ** 2, mask).sqrt().mean())
    return out


def angular_error_deg(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-pixel angle (degrees) between (N, 3, H, W) normal fields; inputs need not be unit."""
    cos = (F.normalize(pred.double(), dim=1) * F.normalize(gt.double(), dim=1)).sum(dim=1)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def normal_metrics(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None
) -> dict[str, float]:
    """Fractions of valid pixels under 11.25 / 22.5 / 30 degrees and RMSE in degrees, per image,
    averaged over images.

    ``valid``: Probe3D's mask, ground-truth depth > 0 ((N, H, W) or (N, 1, H, W), bool or the depth
    itself); None: the pixels whose ground-truth normal has non-zero length.
    """
    if pred.shape != gt.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"normal pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must be equal (N, 3, H, W)")
    n, _, h, w = gt.shape
    mask = _require_pixels(gt.norm(dim=1) > 0 if valid is None else valid.reshape(n, h, w) > 0, "normal")
    err = angular_error_deg(pred, gt)
    out = {f"frac_under_{t}": float(_per_image_mean((err < t).double(), mask).mean()) for t in NORMAL_THRESHOLDS}
    out["rmse_deg"] = float(_per_image_mean(err**2, mask).sqrt().mean())
    return out
