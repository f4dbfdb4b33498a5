"""GridPG localisation score (Boehle et al.): 2x2 grids of distinct-class images.

Each image in a grid is confidently and correctly classified on its own. For each cell, the
attribution for that cell's class is computed on the whole grid; score = positive attribution
inside the cell / total positive attribution. A cell whose map has no positive mass scores 0
and is counted (``zero_mass``), as the localisation metric is defined (B-cos papers; the
reference code sukrutrao/Attribution-Evaluation does not skip it): skipping such cells would
raise the mean of a method that often attributes nothing. Chance level for a uniform map is 0.25.

One grid set for every compared model: the candidates are the images that the scored classifier
*and* every ``gate`` classifier (the other compared models: the teacher and its ALOE student)
classify confidently and correctly, and the grids are drawn from them with a fixed seed, so
every method and model of a backbone is scored on the same grids; the record names the set by a
content hash (``grid_set_digest``) and its size.

When the data cannot give a score (confident images of fewer than 4 classes) the functions raise
``NotEnoughData`` with the counts behind it; the stage writes that as an "unavailable" record
(``aloe.records``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from aloe.records import NotEnoughData

CLASSES_PER_GRID = 4

Classifier = Callable[[torch.Tensor], torch.Tensor]  # images (N, C, H, W) -> logits (N, K)
AttributionFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images, classes) -> (N, [C,] H, W)


@torch.no_grad()
def confident_correct(
    classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, *, threshold: float = 0.5, batch_size: int = 64
) -> torch.Tensor:
    """Indices of images whose softmax top-1 is the label with probability >= threshold."""
    keep = []
    for s in range(0, images.shape[0], batch_size):
        prob = torch.softmax(classifier(images[s : s + batch_size]).float(), dim=1)
        conf, pred = prob.max(dim=1)
        ok = (pred == labels[s : s + batch_size].to(pred.device)) & (conf >= threshold)
        keep.append(ok.nonzero().flatten().cpu() + s)
    return torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)


def make_grids(
    images: torch.Tensor,
    labels: torch.Tensor,
    candidates: torch.Tensor,
    *,
    num_grids: int,
    seed: int = 0,
    grid_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Build ``num_grids`` 2x2 grids from candidate images of 4 distinct classes.

    Returns grids (G, C, 2H, 2W) and cell classes (G, 4) in row-major cell order. With
    ``grid_size`` the grids are resized (bilinear, antialiased) to grid_size x grid_size, e.g.
    to the backbone's native resolution for models with fixed position embeddings.
    """
    gen = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i in candidates.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    classes = sorted(by_class)
    if len(classes) < CLASSES_PER_GRID:
        raise not_enough_classes(labels, by_class)
    grids, cell_classes = [], []
    for _ in range(num_grids):
        pick = [classes[j] for j in torch.randperm(len(classes), generator=gen)[:4].tolist()]
        idx = [by_class[c][int(torch.randint(len(by_class[c]), (1,), generator=gen))] for c in pick]
        top = torch.cat([images[idx[0]], images[idx[1]]], dim=-1)
        bottom = torch.cat([images[idx[2]], images[idx[3]]], dim=-1)
        grids.append(torch.cat([top, bottom], dim=-2))
        cell_classes.append(pick)
    out = torch.stack(grids)
    if grid_size is not None:
        if grid_size % 2:
            raise ValueError(f"gridpg grid_size must be even, got {grid_size}")
        out = F.interpolate(out, size=(grid_size, grid_size), mode="bilinear", antialias=True, align_corners=False)
    return out, torch.tensor(cell_classes)


def not_enough_classes(labels: torch.Tensor, by_class: dict[int, list[int]]) -> NotEnoughData:
    """The error for candidates of too few classes; counts hold the candidates of every class."""
    per_class = {str(c): len(by_class.get(c, [])) for c in sorted(set(labels.tolist()) | set(by_class))}
    found = [f"class {c}: {n}" for c, n in per_class.items() if n]
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
    counts = {"classes_needed": CLASSES_PER_GRID, "classes_found": len(by_class),
              "confident_images": sum(per_class.values()), "images": int(labels.numel()),
              "confident_per_class": per_class}
    return NotEnoughData(
        f"GridPG needs confidently and correctly classified images of >= {CLASSES_PER_GRID} classes; found "
        f"{len(by_class)} class(es) among {labels.numel()} images" + (f" ({shown})" if shown else ""), counts,
    )


def cell_scores(attributions: torch.Tensor) -> torch.Tensor:
    """(N, [C,] H, W) maps -> (N, 4) share of positive mass per 2x2 cell (NaN where zero mass)."""
    a = attributions.sum(dim=1) if attributions.ndim == 4 else attributions
    if a.ndim != 3 or a.shape[-2] % 2 or a.shape[-1] % 2:
        raise ValueError(f"GridPG attributions must be (N, [C,] H, W) with even H, W; got {tuple(attributions.shape)}")
    pos = a.double().clamp_min(0)
    h, w = pos.shape[-2] // 2, pos.shape[-1] // 2
    cells = pos.reshape(pos.shape[0], 2, h, 2, w).sum(dim=(2, 4)).reshape(pos.shape[0], 4)
    total = cells.sum(dim=1, keepdim=True)
    return torch.where(total > 0, cells / total.clamp_min(1e-300), torch.full_like(cells, float("nan")))


@dataclass
class GridPGResult:
    mean: float  # mean score over every cell (zero-mass cells score 0)
    count: int  # cells scored
    zero_mass: int  # of them, cells whose attribution had no positive mass
    num_grids: int
    grid_set: str = ""  # grid_set_digest of the grids scored
    candidates: int = 0  # images every compared classifier got confidently right


def grid_set_digest(grids: torch.Tensor, cell_classes: torch.Tensor) -> str:
    """sha256 (first 16 hex digits) over the grids' pixels (float32) and cell classes (int64)."""
    h = hashlib.sha256()
    h.update(cell_classes.to(torch.int64).contiguous().numpy().tobytes())
    h.update(grids.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def shared_candidates(classifiers: Sequence[Classifier], images: torch.Tensor, labels: torch.Tensor, *,
                      threshold: float) -> torch.Tensor:
    """Indices of the images that every classifier classifies correctly with confidence >= threshold."""
    keep = set(range(images.shape[0]))
    for classifier in classifiers:
        keep &= set(confident_correct(classifier, images, labels, threshold=threshold).tolist())
    return torch.tensor(sorted(keep), dtype=torch.long)


def gridpg(attribution_fn: AttributionFn, grids: torch.Tensor, cell_classes: torch.Tensor) -> GridPGResult:
    """Score every cell of every grid with the attribution for that cell's class."""
    scores, zero_mass = [], 0
    for cell in range(4):
        share = cell_scores(attribution_fn(grids, cell_classes[:, cell]))[:, cell]
        zero = torch.isnan(share)
        zero_mass += int(zero.sum())
        scores.append(torch.where(zero, torch.zeros_like(share), share))
    all_scores = torch.cat(scores)
    return GridPGResult(float(all_scores.mean()), int(all_scores.numel()), zero_mass, int(grids.shape[0]))


def evaluate_gridpg(
    classifier: Classifier,
    attribution_fn: AttributionFn,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    threshold: float = 0.5,
    num_grids: int = 100,
    seed: int = 0,
    grid_size: int | None = None,
    gate: Sequence[Classifier] = (),
) -> GridPGResult:
    """Select the images that ``classifier`` and every ``gate`` classifier get confidently right,
    build the grids, score. See module docstring.

    Raises NotEnoughData when those images cover fewer than 4 classes (its counts add the
    threshold and the number of compared classifiers).
    """
    cand = shared_candidates([classifier, *gate], images, labels, threshold=threshold)
    try:
        grids, cell_classes = make_grids(images, labels, cand, num_grids=num_grids, seed=seed, grid_size=grid_size)
    except NotEnoughData as err:
        counts = {**err.counts, "threshold": threshold, "compared_classifiers": 1 + len(gate)}
        raise NotEnoughData(f"{err.reason} at confidence threshold {threshold:g}", counts) from None
    r = gridpg(attribution_fn, grids, cell_classes)
    r.grid_set, r.candidates = grid_set_digest(grids, cell_classes), int(cand.numel())
    return r
