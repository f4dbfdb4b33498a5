"""Probe3D's default dense probe head: DPT, with binned depth and uncertainty-aware normals.

Written from the definitions in Probe3D (El Banani et al., CVPR 2024; github.com/mbanani/probe3d):
``evals/models/probes.py`` (``DPT``, ``FeatureFusionBlock``, ``ResidualConvUnit``,
``DepthBinPrediction``), ``evals/utils/losses.py`` (``angular_loss(uncertainty_aware=True)``),
``configs/probe/depth_dpt.yaml`` / ``snorm_dpt.yaml`` (hidden 512, kernel 3, 256 bins on
[0.001, 10] m, uncertainty-aware normals) and ``train_depth.py`` / ``train_snorm.py`` (the
resize to the label size).

The same maths as Probe3D:

- reassemble: a 1x1 conv per block to ``hidden_dim`` channels, then every map x2 (bilinear,
  align_corners=True). All blocks stay at one scale (Probe3D's DPT has no per-block
  resampling, unlike Ranftl et al.'s DPT, whose reassemble uses four scales);
- fusion top-down from the deepest block: out = RCU(f_last), then for each shallower block
  out = RCU_b(RCU_a(f_i) + out); RCU(x) = x + ReLU(conv(ReLU(conv(x)))) with k x k convs;
- output: x4, conv3x3 - ReLU - conv3x3, x2 (16x the patch grid), then resized to the label size;
- depth: 256 logits -> p = (ReLU(l) + 0.1) / sum (AdaBins' "linear" normalisation, not a
  softmax) over 256 bin values linspace(0.001, 10, 256) (uniform, linear spacing); depth =
  sum_k p_k * bin_k, computed at 16x the grid, then resized bilinearly to the label size;
- normals: 4 channels resized bicubically to the label size; the normal is channels 0-2 (unit
  length only in the loss / at prediction), kappa = ELU(channel 3) + 1.01 (kappa > 0.01);
- normal loss (Bae et al., ICCV 2021, angular vMF NLL): per valid pixel, with theta the angle
  between the prediction and the label (cosine clamped to [-1 + 1e-4, 1 - 1e-4]),
  log(1 + exp(-kappa pi)) - log(1 + kappa^2) + kappa theta, averaged over valid pixels.

Named deviations (same maths, compact form):

- the input is the channel concatenation of the blocks (block order = channel order), split
  into ``num_blocks`` equal groups; the per-block 1x1 convs are one grouped conv (identical
  to separate convs, initialisation included);
- any ``num_blocks >= 2`` is accepted (Probe3D asserts exactly 4);
- the depth range and bin count are arguments (defaults are Probe3D's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

N_BINS = 256
BIN_EPS = 0.1  # added to ReLU(logits) before normalising (AdaBins "linear")
KAPPA_OFFSET = 1.01  # kappa = ELU(raw) + 1.01, so kappa > 0.01
ANGLE_EPS = 1e-4  # cosine clamp of the uncertainty-aware loss


def depth_bins(n_bins: int = N_BINS, min_depth: float = 1e-3, max_depth: float = 10.0, device=None) -> torch.Tensor:
    """The bin values: ``n_bins`` uniformly spaced depths from min_depth to max_depth, ends included."""
    return torch.linspace(min_depth, max_depth, n_bins, device=device)


def bins_to_depth(logits: torch.Tensor, min_depth: float = 1e-3, max_depth: float = 10.0) -> torch.Tensor:
    """(N, n_bins, H, W) logits -> (N, 1, H, W) depth in metres: the bin values weighted by
    p = (ReLU(logits) + 0.1) / sum. Depth lies strictly inside (min_depth, max_depth)."""
    p = logits.relu() + BIN_EPS
    p = p / p.sum(dim=1, keepdim=True)
    bins = depth_bins(logits.shape[1], min_depth, max_depth, logits.device).to(logits.dtype)
    return torch.einsum("nkhw,k->nhw", p, bins)[:, None]


def kappa_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """The concentration: ELU(raw) + 1.01 (> 0.01)."""
    return F.elu(raw) + KAPPA_OFFSET


def uncertainty_nll(angle: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """Bae et al.'s angular vMF negative log-likelihood per pixel (up to a constant)."""
    return F.softplus(-math.pi * kappa) - torch.log1p(kappa**2) + kappa * angle


def uncertainty_angular_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean NLL over valid pixels. pred (N, 4, H, W): normal (any length) and kappa > 0;
    gt (N, 3, H, W); valid (N, H, W) bool."""
    cos = F.cosine_similarity(pred[:, :3], gt, dim=1).clamp(-1 + ANGLE_EPS, 1 - ANGLE_EPS)
    return uncertainty_nll(torch.arccos(cos), pred[:, 3])[valid].mean()


class _ResidualConvUnit(nn.Module):
    def __init__(self, width: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(width, width, kernel_size, padding=pad), nn.ReLU(),
            nn.Conv2d(width, width, kernel_size, padding=pad), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _FusionBlock(nn.Module):
    """out = RCU_b(RCU_a(x) + deeper), or RCU_b(x) for the deepest block (no skip unit)."""

    def __init__(self, width: int, kernel_size: int, skip: bool):
        super().__init__()
        self.skip_unit = _ResidualConvUnit(width, kernel_size) if skip else None
        self.unit = _ResidualConvUnit(width, kernel_size)

    def forward(self, x: torch.Tensor, deeper: torch.Tensor | None = None) -> torch.Tensor:
        if deeper is not None:
            x = self.skip_unit(x) + deeper
        return self.unit(x)


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=True)


class DPTDenseHead(nn.Module):
    """Probe3D's DPT head on the channel concatenation of ``num_blocks`` equal block groups.

    ``forward(feats, size)``: feats (N, in_channels, h, w) -> at the label ``size``: depth in
    metres (N, 1, H, W) for task "depth"; (N, 4, H, W) = normal (unnormalised) and kappa for
    task "normals".
    """

    def __init__(
        self,
        in_channels: int,
        num_blocks: int,
        task: str,
        *,
        hidden_dim: int = 512,
        kernel_size: int = 3,
        n_bins: int = N_BINS,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
    ):
        super().__init__()
        if num_blocks < 2 or in_channels % num_blocks:
            raise ValueError(f"DPT head needs >= 2 equal block groups; got {in_channels} channels, {num_blocks} blocks")
        if task not in ("depth", "normals"):
            raise ValueError(f"dense task must be 'depth' or 'normals', got {task!r}")
        self.task, self.num_blocks = task, num_blocks
        self.n_bins, self.min_depth, self.max_depth = n_bins, min_depth, max_depth
        self.reassemble = nn.Conv2d(in_channels, num_blocks * hidden_dim, 1, groups=num_blocks)
        self.fusion = nn.ModuleList(_FusionBlock(hidden_dim, kernel_size, skip=i < num_blocks - 1)
                                    for i in range(num_blocks))
        self.out_conv = nn.Sequential(
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden_dim, n_bins if task == "depth" else 4, 3, padding=1),
        )

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        groups = _up(self.reassemble(feats), 2).chunk(self.num_blocks, dim=1)
        out = self.fusion[-1](groups[-1])
        for i in range(self.num_blocks - 2, -1, -1):
            out = self.fusion[i](groups[i], out)
        out = _up(self.out_conv(_up(out, 4)), 2)
        if self.task == "depth":
            depth = bins_to_depth(out, self.min_depth, self.max_depth)
            return F.interpolate(depth, size=size, mode="bilinear", align_corners=True)
        out = F.interpolate(out, size=size, mode="bicubic", align_corners=True)
        return torch.cat([out[:, :3], kappa_from_raw(out[:, 3:])], dim=1)
