"""Post-hoc attributions through captum for any callable classifier images -> logits."""

from __future__ import annotations

from typing import Callable

import torch
from captum.attr import IntegratedGradients, Lime

Model = Callable[[torch.Tensor], torch.Tensor]


def integrated_gradients(
    model: Model,
    images: torch.Tensor,
    classes: torch.Tensor,
    *,
    n_steps: int = 50,
    baseline: float = 0.0,
    internal_batch_size: int | None = None,
) -> torch.Tensor:
    """(N, C, H, W) Integrated Gradients from a constant ``baseline`` image."""
    ig = IntegratedGradients(model)
    with torch.enable_grad():
        attr = ig.attribute(
            images, baselines=baseline, target=classes.long().tolist(), n_steps=n_steps,
            internal_batch_size=internal_batch_size,
        )
    return attr.detach()


def block_mask(height: int, width: int, block: int) -> torch.Tensor:
    """(1, 1, H, W) integer mask numbering block x block squares row-major."""
    if height % block or width % block:
        raise ValueError(f"image size {height}x{width} is not a multiple of the LIME block {block}")
    ids = torch.arange((height // block) * (width // block)).view(1, 1, height // block, width // block)
    return ids.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)


def lime(
    model: Model,
    images: torch.Tensor,
    classes: torch.Tensor,
    *,
    block: int = 16,
    n_samples: int = 256,
    perturbations_per_eval: int = 16,
    baseline: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """(N, 1, H, W) LIME weights of block x block superpixels (captum defaults: Lasso surrogate,
    exponential cosine kernel).

    Images are explained one at a time (captum's LIME fits one surrogate per example); the
    random perturbations are seeded so that results are reproducible.
    """
    explainer = Lime(model)
    mask = block_mask(images.shape[-2], images.shape[-1], block).to(images.device)
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for img, c in zip(images, classes.long().tolist()):
            attr = explainer.attribute(
                img[None], target=c, feature_mask=mask.expand(1, img.shape[0], -1, -1), baselines=baseline,
                n_samples=n_samples, perturbations_per_eval=perturbations_per_eval,
            )
            out.append(attr[:, :1].detach())  # the mask spans all channels: the same value in each
    return torch.cat(out)
