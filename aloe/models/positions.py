"""Learned position embeddings at another resolution, as the HF teachers compute them.

``interpolate_pos_encoding=True`` in ``transformers``' ViT and SigLIP embeddings: the trained
(side x side) grid of patch positions is resized to the image's (rows x cols) patch grid by
bicubic interpolation (``align_corners=False``); ViT's [CLS] position is kept as it is, SigLIP
has none. At the trained grid the positions are used unchanged, as the teachers do. The
interpolation is linear in the embeddings, so the explanations' constant term (the contribution
of the trained positions) still closes the sum.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def patch_grid(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """(rows, cols) of patches of an image; the sides must be multiples of the patch size."""
    if height < patch_size or width < patch_size or height % patch_size or width % patch_size:
        raise ValueError(f"student takes images whose height and width are multiples of its patch size "
                         f"{patch_size}, got {height}x{width}; resize or crop them (BcosImageProcessor does)")
    return height // patch_size, width // patch_size


def interpolate_positions(pos: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
    """(N, num_prefix + side², D) position embeddings -> (N, num_prefix + rows * cols, D) for the
    patch grid ``grid`` = (rows, cols); the first ``num_prefix`` rows ([CLS]) are kept."""
    n, count, dim = pos.shape
    side = math.isqrt(count - num_prefix)
    if side * side != count - num_prefix:
        raise ValueError(f"position embeddings of {count - num_prefix} patches are not a square grid")
    if tuple(grid) == (side, side):
        return pos
    prefix, patches = pos[:, :num_prefix], pos[:, num_prefix:]
    patches = patches.reshape(n, side, side, dim).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=tuple(grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(n, grid[0] * grid[1], dim)
    return torch.cat((prefix, patches), dim=1)
