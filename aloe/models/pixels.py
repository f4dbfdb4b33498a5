"""What a B-cos student accepts as pixels, checked before the forward pass and ``explain``.

The student takes raw RGB as a float tensor (N, 3, H, W) with values in [0, 1] (it builds the
six channels [x, 1 - x] itself), in the dtype of its weights. Anything else is refused with a
message saying what was wrong and how to fix it, instead of giving plausible-looking, wrong
outputs: uint8 images (divide by 255), ImageNet-normalised pixels (undo the normalisation),
NaN / inf values, another float dtype (convert it). Conversion is left to the caller on purpose:
a silent ``/255`` would also rescale an int tensor that already holds 0/1 values.

The check costs one reduction and one host sync per call; values within ``TOLERANCE`` of the
range (rounding in a resize) pass.
"""

from __future__ import annotations

import torch

TOLERANCE = 1e-4


def check_pixels(pixels: object, dtype: torch.dtype, where: str = "student") -> None:
    """Raise TypeError / ValueError naming what is wrong with ``pixels`` for a model in ``dtype``."""
    if not isinstance(pixels, torch.Tensor):
        raise TypeError(f"{where}: pixels must be a torch.Tensor (N, 3, H, W), got {type(pixels).__name__}")
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"{where}: pixels must have shape (N, 3, H, W) (RGB), got {tuple(pixels.shape)}")
    if pixels.dtype == torch.uint8:
        raise TypeError(f"{where}: pixels are uint8 (0..255); the student takes float RGB in [0, 1]: "
                        f"pass pixels.to({_name(dtype)}) / 255")
    if not pixels.is_floating_point():
        raise TypeError(f"{where}: pixels are {_name(pixels.dtype)}; the student takes float RGB in [0, 1] "
                        f"in its weights' dtype {_name(dtype)}")
    if pixels.dtype != dtype:
        raise TypeError(f"{where}: pixels are {_name(pixels.dtype)} but the student's weights are {_name(dtype)}; "
                        f"pass pixels.to({_name(dtype)}) (or convert the student)")
    if pixels.numel() and not bool(((pixels >= -TOLERANCE) & (pixels <= 1 + TOLERANCE)).all()):
        _explain_range(pixels, where)


def _explain_range(pixels: torch.Tensor, where: str) -> None:
    finite = torch.isfinite(pixels)
    if not finite.all():
        images = (~finite).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"{where}: pixels hold {int((~finite).sum())} NaN/inf values (images {images[:10]}"
                         f"{' ...' if len(images) > 10 else ''})")
    lo, hi = pixels.min().item(), pixels.max().item()
    hint = ("; they look ImageNet-normalised: undo the normalisation (the student takes raw RGB)" if lo < 0
            else "; 0..255 values? divide by 255" if hi > 1.5 else "")
    raise ValueError(f"{where}: pixels must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}")


def _name(dtype: torch.dtype) -> str:
    return str(dtype)  # e.g. torch.float32: what the caller types to convert
