"""DINOv3's 2-D rotary position embedding on patch tokens (prefix tokens are not rotated).

Written from the DINOv3 formulation: patch-centre coordinates in [-1, 1], per-axis
frequencies 1 / theta^(4i/d_head), angles 2π·coord·freq, applied as q·cos + rotate_half(q)·sin.
Training-time coordinate augmentation is not used: the student mirrors the teacher at eval.
"""

from __future__ import annotations

import math

import torch


def rope_inv_freq(head_dim: int, theta: float) -> torch.Tensor:
    """Per-axis frequencies (head_dim / 4,), computed in float32 as DINOv3 does; kept as a buffer so
    that it follows the module's dtype (as the teacher's ``inv_freq`` buffer does)."""
    if head_dim % 4:
        raise ValueError(f"2-D RoPE needs a head dim divisible by 4, got {head_dim}")
    return 1.0 / theta ** torch.arange(0, 1, 4 / head_dim, dtype=torch.float32)


def rope_tables(grid: int | tuple[int, int], inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables of shape (rows * cols, head_dim) for a patch grid of ``grid`` = (rows,
    cols) patches (an int: a square grid), patches in row-major order, in ``inv_freq``'s dtype.

    Each axis has its own coordinates in [-1, 1] (HF DINOv3's ``get_patches_center_coordinates``),
    so any grid, square or not, is positioned as the teacher positions it. Coordinates are float32
    whatever the dtype, and the angles are formed in the same order as the HF teacher, so a float64
    student reproduces a float64 teacher to rounding (and a float32 one bit for bit)."""
    rows, cols = (grid, grid) if isinstance(grid, int) else grid

    def centres(n: int) -> torch.Tensor:
        return (torch.arange(n, dtype=torch.float32, device=inv_freq.device) + 0.5) / n * 2.0 - 1.0

    coords = torch.stack(torch.meshgrid(centres(rows), centres(cols), indexing="ij"), dim=-1).flatten(0, 1)  # (y, x)
    angles = (2 * math.pi * coords[:, :, None] * inv_freq[None, None, :]).flatten(1, 2).tile(2)  # (P, head_dim)
    return angles.cos(), angles.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_prefix: int):
    """Rotate the patch tokens of (N, heads, T, d) queries and keys."""
    def rotate(x: torch.Tensor) -> torch.Tensor:
        prefix, patches = x[..., :num_prefix, :], x[..., num_prefix:, :]
        c, s = cos.to(x.dtype), sin.to(x.dtype)
        return torch.cat((prefix, patches * c + _rotate_half(patches) * s), dim=-2)

    return rotate(q), rotate(k)
