"""GridPG localisation score (Boehle et al.): 2x2 grids of distinct-class images.

Each image in a grid is confidently and correctly classified on its own. For each cell, the
attribution for that cell's class is computed on the grid (whole, or window by window: the
protocols below); score = positive attribution inside the cell / total positive attribution. A
cell whose map has no positive mass scores 0 and is counted (``zero_mass``), as the localisation
metric is defined (B-cos papers; the reference code sukrutrao/Attribution-Evaluation does not skip
it): skipping such cells would raise the mean of a method that often attributes nothing. Chance
level for a uniform map is 0.25.

One grid set for every compared model: the candidates are the images that the scored classifier
*and* every ``gate`` classifier (the other compared models: the teacher and its ALOE student)
classify confidently and correctly, and the grids are drawn from them with a fixed seed, so
every method and model of a backbone is scored on the same grids; the record names the set by a
content hash (``grid_set_digest``) and its size.

Two protocols (config ``evaluation.gridpg.protocol``, ``PROTOCOLS``):

- ``resize``: the 2x2 grid (each cell an image at the model's native size, so 2x native) is
  resized to the native size and explained in one pass; softmax confidence for every classifier.
- ``sliding_window``: the ALOE authors' variant. The grid stays at 2x native (every cell at
  native resolution); a cell's class is explained on every native-size window of the grid with
  stride half a cell (3 x 3 = 9 windows for a 2x2 grid), each window's map is placed at its
  position in the grid and the overlapping maps are averaged (sum / number of windows covering
  the pixel: 1 in the four corner quarter-cells, 4 in the central cell-sized square, 2 between);
  then the usual cell score. Confidence: sigmoid for a classifier whose head is a B-cos head
  (``head == "bcos"``, ``aloe.eval.classifier.ProbedClassifier``), softmax for the others
  (``CONFIDENCE``). Each cell costs 9 attributions of native-size windows instead of one.

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
PROTOCOLS = ("resize", "sliding_window")
CONFIDENCE = {"resize": "softmax", "sliding_window": "head"}  # "head": sigmoid for B-cos heads, else softmax

Classifier = Callable[[torch.Tensor], torch.Tensor]  # images (N, C, H, W) -> logits (N, K)
AttributionFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images, classes) -> (N, [C,] H, W)


def confidence_function(classifier: Classifier, confidence: str = "softmax") -> str:
    """The function that turns ``classifier``'s logits into confidences: "softmax" or "sigmoid";
    ``confidence="head"``: sigmoid for a B-cos head (``classifier.head == "bcos"``), else softmax."""
    if confidence == "head":
        return "sigmoid" if getattr(classifier, "head", "linear") == "bcos" else "softmax"
    if confidence not in ("softmax", "sigmoid"):
        raise ValueError(f"confidence must be 'softmax', 'sigmoid' or 'head', got {confidence!r}")
    return confidence


@torch.no_grad()
def confident_correct(
    classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, *, threshold: float = 0.5, batch_size: int = 64,
    confidence: str = "softmax",
) -> torch.Tensor:
    """Indices of images whose top-1 is the label with confidence >= threshold; the confidence is
    the softmax probability or the sigmoid of the logit (``confidence_function``)."""
    squash = confidence_function(classifier, confidence)
    keep = []
    for s in range(0, images.shape[0], batch_size):
        logits = classifier(images[s : s + batch_size]).float()
        prob = torch.sigmoid(logits) if squash == "sigmoid" else torch.softmax(logits, dim=1)
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
    protocol: str = "resize"
    grid_size: int = 0  # side of the grids scored (pixels)
    windows: int = 1  # attributions per cell (sliding_window: 9)


def grid_set_digest(grids: torch.Tensor, cell_classes: torch.Tensor) -> str:
    """sha256 (first 16 hex digits) over the grids' pixels (float32) and cell classes (int64)."""
    h = hashlib.sha256()
    h.update(cell_classes.to(torch.int64).contiguous().numpy().tobytes())
    h.update(grids.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def shared_candidates(classifiers: Sequence[Classifier], images: torch.Tensor, labels: torch.Tensor, *,
                      threshold: float, confidence: str = "softmax") -> torch.Tensor:
    """Indices of the images that every classifier classifies correctly with confidence >= threshold
    (each classifier's confidence by ``confidence_function``)."""
    keep = set(range(images.shape[0]))
    for classifier in classifiers:
        keep &= set(confident_correct(classifier, images, labels, threshold=threshold, confidence=confidence).tolist())
    return torch.tensor(sorted(keep), dtype=torch.long)


def window_offsets(size: int, window: int) -> list[int]:
    """Start of every window of side ``window`` along an axis of ``size`` pixels, stride half a
    window: [0, window / 2, window] for a 2-cell axis (size = 2 * window)."""
    if window % 2 or window > size or (size - window) % (window // 2):
        raise ValueError(f"sliding windows of {window} px with stride {window // 2} px do not tile {size} px")
    return list(range(0, size - window + 1, window // 2))


def sliding_window_attributions(
    attribution_fn: AttributionFn, grids: torch.Tensor, classes: torch.Tensor, *, window: int
) -> torch.Tensor:
    """(N, H, W) map of ``classes`` on ``grids`` (N, C, H, W) from the attributions of every
    ``window`` x ``window`` crop (stride window / 2; ``window_offsets``), each placed at its position
    and averaged where windows overlap (sum / count per pixel). Channels of (N, C, h, w) window maps
    are summed first (``cell_scores`` sums them anyway; the average is linear)."""
    h, w = grids.shape[-2:]
    total = count = None
    for top in window_offsets(h, window):
        for left in window_offsets(w, window):
            crop = grids[..., top : top + window, left : left + window].contiguous()
            m = attribution_fn(crop, classes).detach()
            m = m.sum(dim=1) if m.ndim == 4 else m
            if m.shape != (grids.shape[0], window, window):
                raise ValueError(f"attribution of a {window} px window must be (N, [C,] {window}, {window}); "
                                 f"got {tuple(m.shape)}")
            if total is None:
                total = m.new_zeros(grids.shape[0], h, w, dtype=torch.float32)
                count = torch.zeros(h, w, dtype=torch.float32, device=m.device)
            total[:, top : top + window, left : left + window] += m.float()
            count[top : top + window, left : left + window] += 1
    return total / count


def gridpg(attribution_fn: AttributionFn, grids: torch.Tensor, cell_classes: torch.Tensor, *,
           window: int | None = None) -> GridPGResult:
    """Score every cell of every grid with the attribution for that cell's class: on the whole grid,
    or with ``window`` averaged over sliding windows of that side (``sliding_window_attributions``)."""
    scores, zero_mass = [], 0
    for cell in range(4):
        classes = cell_classes[:, cell]
        maps = (attribution_fn(grids, classes) if window is None
                else sliding_window_attributions(attribution_fn, grids, classes, window=window))
        share = cell_scores(maps)[:, cell]
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
    protocol: str = "resize",
) -> GridPGResult:
    """Select the images that ``classifier`` and every ``gate`` classifier get confidently right,
    build the grids, score with ``protocol`` (module docstring). ``images`` are at the model's
    native size: ``resize`` resizes the grids to ``grid_size`` (the native size; None keeps them),
    ``sliding_window`` keeps them at 2x and explains windows of the images' size (no ``grid_size``).

    Raises NotEnoughData when those images cover fewer than 4 classes (its counts add the
    threshold, the confidence functions and the number of compared classifiers).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"gridpg protocol must be one of {PROTOCOLS}, got {protocol!r}")
    window = None
    if protocol == "sliding_window":
        if grid_size is not None:
            raise ValueError("gridpg protocol sliding_window keeps the cells at native size: no grid_size")
        if images.shape[-1] != images.shape[-2]:
            raise ValueError(f"gridpg sliding_window needs square images, got {tuple(images.shape[-2:])}")
        window = int(images.shape[-1])
    compared = [classifier, *gate]
    cand = shared_candidates(compared, images, labels, threshold=threshold, confidence=CONFIDENCE[protocol])
    try:
        grids, cell_classes = make_grids(images, labels, cand, num_grids=num_grids, seed=seed, grid_size=grid_size)
    except NotEnoughData as err:
        squash = [confidence_function(c, CONFIDENCE[protocol]) for c in compared]
        counts = {**err.counts, "threshold": threshold, "compared_classifiers": len(compared), "confidence": squash}
        how = "" if protocol == "resize" else f" ({'/'.join(squash)} of the compared classifiers)"
        raise NotEnoughData(f"{err.reason} at confidence threshold {threshold:g}{how}", counts) from None
    r = gridpg(attribution_fn, grids, cell_classes, window=window)
    r.grid_set, r.candidates = grid_set_digest(grids, cell_classes), int(cand.numel())
    r.protocol, r.grid_size = protocol, int(grids.shape[-1])
    r.windows = 1 if window is None else len(window_offsets(r.grid_size, window)) ** 2
    return r
