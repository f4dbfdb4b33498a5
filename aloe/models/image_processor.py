"""Images of any size in, student pixels out: ``pixel_values`` float RGB (N, 3, S, S) in [0, 1].

``BcosImageProcessor`` applies the evaluation view the pipeline gives the student's family
(``aloe.data.eval_loader.eval_transform`` on classification data: SigLIP's whole image resized,
bicubic; the others' largest centred square, bilinear; or a named view), with the same functions
the evaluation loader runs (``aloe.data.eval_loader.VIEWS``), so a stored image gives the pixels
the pipeline fed the student. There is no normalisation: the student takes raw RGB and builds
its six channels [x, 1 - x] itself. ``size`` (S), the view and its crop and interpolation are
recorded in ``preprocessor_config.json``, which ``AutoImageProcessor`` reads once
``aloe.models`` is imported.

Inputs: PIL images, image file paths, uint8 (0..255) or float ([0, 1]) tensors or arrays, (H, W),
(3, H, W), (H, W, 3) or batches (N, ...) of them, or lists mixing these. Float images are resized
in float (antialiased, clamped to [0, 1]) rather than rounded to uint8 first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image
from transformers import BaseImageProcessor, BatchFeature

from aloe.data.augment import decode_image, to_nchw
from aloe.data.eval_loader import EVAL_TRANSFORMS, VIEWS, eval_transform
from aloe.models.pixels import TOLERANCE

# what each view does, recorded in the config for readers (derived from ``transform``)
VIEW_RECORDS = {
    "center_crop": {"crop": "largest centred square", "interpolation": "bilinear"},
    "resize": {"crop": "none (whole image, aspect ratio not kept)", "interpolation": "bicubic"},
    "resize_center_crop": {"crop": "short side to size * 256 / 224, then the centred square",
                           "interpolation": "bicubic"},
}
_RECORDED = ("crop", "interpolation", "do_normalize", "do_rescale")
_BOOKKEEPING = ("image_processor_type", "processor_class", "feature_extractor_type", "auto_map")


class BcosImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values"]

    def __init__(self, size: int = 224, transform: str = "center_crop", patch_size: Optional[int] = None,
                 **kwargs: Any):
        recorded = {k: kwargs.pop(k) for k in _RECORDED if k in kwargs}
        for key in _BOOKKEEPING:
            kwargs.pop(key, None)
        if kwargs:
            raise ValueError(f"BcosImageProcessor: unknown settings {sorted(kwargs)}; it takes size, transform "
                             "and patch_size")
        super().__init__()
        if transform not in EVAL_TRANSFORMS:
            raise ValueError(f"BcosImageProcessor: transform must be one of {EVAL_TRANSFORMS}, got {transform!r}")
        if patch_size is not None and (not isinstance(patch_size, int) or patch_size < 1):
            raise ValueError(f"BcosImageProcessor: patch_size must be a positive integer, got {patch_size!r}")
        self.transform, self.patch_size = transform, patch_size
        self.size = self._check_size(size)
        self.crop, self.interpolation = VIEW_RECORDS[transform]["crop"], VIEW_RECORDS[transform]["interpolation"]
        self.do_normalize, self.do_rescale = False, True  # raw RGB; uint8 images are divided by 255
        for key, value in recorded.items():
            if value != getattr(self, key):
                raise ValueError(f"BcosImageProcessor: {key} {value!r} does not go with transform {transform!r} "
                                 f"({getattr(self, key)!r}); set transform instead")

    @classmethod
    def for_student(cls, config: Any, transform: str = "auto", size: Optional[int] = None) -> "BcosImageProcessor":
        """The pipeline's view for a student config (``eval_transform``'s choice; ``size``: the
        config's image size unless given)."""
        view = eval_transform(config.family, "classification", transform)
        return cls(size=int(size or config.image_size), transform=view, patch_size=int(config.patch_size))

    def _check_size(self, size: Any) -> int:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"BcosImageProcessor: size must be a positive integer (a square side), got {size!r}")
        if self.patch_size and size % self.patch_size:
            raise ValueError(f"BcosImageProcessor: size {size} is not a multiple of the student's patch size "
                             f"{self.patch_size}")
        return size

    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(self, images: Any, size: Optional[int] = None, return_tensors: Optional[str] = "pt",
                   dtype: torch.dtype = torch.float32) -> BatchFeature:
        """``{"pixel_values": (N, 3, S, S)}`` in ``dtype``, values in [0, 1]."""
        side = self.size if size is None else self._check_size(size)
        if return_tensors not in ("pt", None):
            raise ValueError(f"BcosImageProcessor returns torch tensors (return_tensors='pt'), got {return_tensors!r}")
        flat = _flatten(images)
        if not flat:
            raise ValueError("BcosImageProcessor got no images")
        view = VIEWS[self.transform]
        out = [self._one(view, image, side, i) for i, image in enumerate(flat)]
        return BatchFeature(data={"pixel_values": torch.stack(out).to(dtype)})

    @staticmethod
    def _one(view, image: Any, side: int, index: int) -> torch.Tensor:
        chw = _to_chw(image, index)
        if chw.dtype == torch.uint8:
            return to_nchw(view(chw, side)[None])[0]  # the evaluation loader's conversion
        return view(chw, side).permute(2, 0, 1).clamp(0, 1).contiguous()


def _flatten(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        return [one for item in images for one in _flatten(item)]
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        return list(images)
    return [images]


def _to_chw(image: Any, index: int) -> torch.Tensor:
    """One image -> (3, H, W), uint8 or float32 in [0, 1]."""
    where = f"BcosImageProcessor: image {index}"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: no image file {path}")
        try:
            return decode_image(path.read_bytes())
        except Exception as err:
            raise ValueError(f"{where}: {path} is not an image the decoders read: {err}") from err
    if isinstance(image, Image.Image):
        image = np.array(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.array(image))  # a copy: arrays may be read-only views
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{where}: expected a PIL image, a path, a tensor or an array, got {type(image).__name__}")
    x = image.detach().cpu()
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"{where}: expected (H, W), (3, H, W) or (H, W, 3), got shape {tuple(image.shape)}")
    if x.shape[0] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(2, 0, 1)
    if x.shape[0] not in (1, 3):
        raise ValueError(f"{where}: expected 1 or 3 channels (grey or RGB), got shape {tuple(image.shape)}")
    x = x.expand(3, -1, -1).contiguous()
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise TypeError(f"{where}: {x.dtype} pixels; pass uint8 (0..255) or float in [0, 1]")
    x = x.float()
    if x.numel() and not bool(((x >= -TOLERANCE) & (x <= 1 + TOLERANCE)).all()):
        lo, hi = float(x.min()), float(x.max())
        hint = "; 0..255 values? pass them as uint8" if hi > 1.5 else ""
        raise ValueError(f"{where}: float pixels must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]{hint}")
    return x.clamp(0, 1)
