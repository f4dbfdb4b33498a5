"""The paper's plots from result records: Fig. 9 / B2 (data efficiency) and Fig. 1 right
(GridPG vs recognition accuracy). PNG, matplotlib Agg backend, written atomically.

Data-efficiency records are ALOE runs with variant "aloe:data=<fraction of the alignment set>".
Each function returns the plotted numbers so callers and tests can check them. A point whose
record is unavailable (``aloe.records``) is not drawn: the function logs it, lists it under
the axes with its reason, and returns it with status "unavailable".
"""

from __future__ import annotations

import logging
import os
import textwrap
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from aloe.io import atomic_path
from aloe.tables.collect import CellKey, MissingRecordError, RecordIndex, parse_variant
from aloe.tables.names import (
    ALOE, BACKBONE_LABELS, BACKBONE_ORDER, BCOSIFICATION, DATASET_LABELS, DATASET_ORDER, METHOD_LABELS,
    METHOD_ORDER, TEACHER, label, metric, ordered,
)

log = logging.getLogger(__name__)


def not_shown(ax, skipped: list[str]) -> None:
    """Log the points left out (n/a) and list them under the axes."""
    for what in skipped:
        log.warning("not plotted (n/a): %s", what)
    if skipped:
        text = "\n".join(textwrap.fill(f"not shown (n/a): {w}", 110) for w in skipped)
        ax.text(0.0, -0.25, text, transform=ax.transAxes, fontsize=6, va="top", ha="left")


VARIANT_NAMES = {TEACHER: "teacher", BCOSIFICATION: "B-cosif.", ALOE: "ALOE"}


def save_figure(fig, out_png: str | os.PathLike) -> None:
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=300, bbox_inches="tight")
    plt.close(fig)


def _first_dataset(index: RecordIndex, metric_name: str, dataset: str | None) -> str:
    if dataset:
        return dataset
    found = ordered(index.values("dataset", metric=metric_name), DATASET_ORDER)
    if not found:
        raise MissingRecordError(f"no {metric_name!r} records among {index.num_files} record file(s)")
    return found[0]


MIN_SPAN = 10.0  # percentage points: the smallest y range of the data-efficiency plot


def plot_data_efficiency(
    record_paths: Iterable[str | os.PathLike],
    out_png: str | os.PathLike,
    *,
    metric_name: str = "lp_top1",
    dataset: str | None = None,
    backbones: Sequence[str] | None = None,
) -> dict[str, dict[str, object]]:
    """Metric vs alignment-data fraction (log x), one line per backbone; the teacher (grey) and
    B-cosification (dotted) as horizontal references where their records exist.

    Returns {backbone: {"fractions": [...], "values": [...], "teacher": v|None, "bcosification": v|None,
    "unavailable": {fraction: reason}}}; an unavailable reference is None.
    """
    index = RecordIndex.from_files(record_paths)
    dataset = _first_dataset(index, metric_name, dataset)
    scale = metric(metric_name).scale
    runs: dict[str, dict[float, float]] = {}
    unavailable: dict[str, dict[float, str]] = {}
    for k in index.keys():
        base, axis, setting = parse_variant(k.variant)
        if base == ALOE and axis == "data" and k.metric == metric_name and k.dataset == dataset:
            try:
                fraction = float(setting)
            except ValueError:
                raise ValueError(f"variant {k.variant!r}: the data setting must be a fraction") from None
            entry = index.get(k)
            runs.setdefault(k.backbone, {})
            if entry.available:
                runs[k.backbone][fraction] = entry.value * scale
            else:
                unavailable.setdefault(k.backbone, {})[fraction] = entry.reason
    backbones = list(backbones) if backbones else ordered(runs, BACKBONE_ORDER)
    if not backbones:
        raise MissingRecordError(f"no 'aloe:data=<fraction>' records of {metric_name!r} on {dataset!r}")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    out: dict[str, dict[str, object]] = {}
    skipped = []
    for i, b in enumerate(backbones):
        if b not in runs:
            raise MissingRecordError(f"no 'aloe:data=<fraction>' record for backbone={b!r} dataset={dataset!r} "
                                     f"metric={metric_name!r}")
        fractions = sorted(runs[b])
        values = [runs[b][f] for f in fractions]
        colour = f"C{i}"
        ax.plot([100 * f for f in fractions], values, "o-", color=colour, label=f"ALOE {label(b, BACKBONE_LABELS)}")
        na = unavailable.get(b, {})
        skipped += [f"ALOE {label(b, BACKBONE_LABELS)} at {100 * f:g} %: {r}" for f, r in sorted(na.items())]
        refs = {}
        for v, style in ((TEACHER, "--"), (BCOSIFICATION, ":")):
            key = CellKey(b, v, dataset, metric_name)
            entry = index.get(key) if index.has(key) else None
            refs[v] = entry.value * scale if entry is not None and entry.available else None
            if entry is not None and not entry.available:
                skipped.append(f"{VARIANT_NAMES[v]} {label(b, BACKBONE_LABELS)}: {entry.reason}")
            if refs[v] is not None:
                ax.axhline(refs[v], linestyle=style, color="grey" if v == TEACHER else colour, linewidth=1,
                           label=f"{VARIANT_NAMES[v]} {label(b, BACKBONE_LABELS)}")
        out[b] = {"fractions": fractions, "values": values, **refs, "unavailable": dict(sorted(na.items()))}
    not_shown(ax, skipped)
    shown = [v for b in out.values() for v in [*b["values"], b[TEACHER], b[BCOSIFICATION]] if v is not None]
    if shown:  # at least MIN_SPAN on the y axis: a difference of one test image is not drawn as a trend
        mid, half = (max(shown) + min(shown)) / 2, max(max(shown) - min(shown), MIN_SPAN) / 2 * 1.1
        ax.set_ylim(mid - half, mid + half)
    ax.set_xscale("log")
    ax.set_xlabel("alignment data (% of the set)")
    ax.set_ylabel(f"{metric(metric_name).label} on {label(dataset, DATASET_LABELS)} ({metric(metric_name).unit})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, out_png)
    return out


def plot_gridpg_vs_accuracy(
    record_paths: Iterable[str | os.PathLike],
    out_png: str | os.PathLike,
    *,
    metric_name: str = "lp_top1",
    dataset: str | None = None,
    backbones: Sequence[str] | None = None,
) -> list[dict[str, object]]:
    """GridPG (y) vs recognition accuracy (x): each teacher explained post hoc by every method
    in its GridPG records, and its ALOE student explained by B-cos W(x)x.

    Returns one dict per point: backbone, variant, method, accuracy, gridpg (display units; None
    when unavailable), status ("ok" or "unavailable": not drawn) and reason.
    """
    index = RecordIndex.from_files(record_paths)
    dataset = _first_dataset(index, metric_name, dataset)
    grid = [k for k in index.keys() if k.metric == "gridpg" and k.variant in (TEACHER, ALOE)]
    backbones = list(backbones) if backbones else ordered({k.backbone for k in grid}, BACKBONE_ORDER)
    if not backbones:
        raise MissingRecordError("no GridPG records of teachers or ALOE students")
    points = []
    for b in backbones:
        for v in (TEACHER, ALOE):
            methods = [k.method for k in grid if k.backbone == b and k.variant == v]
            if v == ALOE:
                methods = [m for m in methods if m == "bcos"]
            if not methods:
                raise MissingRecordError(f"no GridPG record for backbone={b!r} variant={v!r}"
                                         + (" method='bcos'" if v == ALOE else ""))
            acc = index.get(CellKey(b, v, dataset, metric_name))
            for m in ordered(methods, METHOD_ORDER):
                key = next(k for k in grid if (k.backbone, k.variant, k.method) == (b, v, m))
                points.append(_point(b, v, m, acc, index.get(key), metric_name))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    markers = dict(zip(METHOD_ORDER, "Psov^D*"))  # bcos (ALOE, last) is the star
    colours = {b: f"C{i}" for i, b in enumerate(backbones)}
    skipped = []
    for p in points:
        name = "ALOE (B-cos)" if p["variant"] == ALOE else f"teacher ({label(p['method'], METHOD_LABELS)})"
        if p["status"] != "ok":
            skipped.append(f"{label(p['backbone'], BACKBONE_LABELS)} {name}: {p['reason']}")
            continue
        ax.scatter(p["accuracy"], p["gridpg"], color=colours[p["backbone"]], marker=markers.get(p["method"], "o"),
                   s=80 if p["variant"] == ALOE else 40,
                   label=f"{label(p['backbone'], BACKBONE_LABELS)}: {name}")
    ax.axhline(25.0, color="grey", linestyle=":", linewidth=1, label="chance (25 %)")
    not_shown(ax, skipped)
    ax.set_xlabel(f"{metric(metric_name).label} on {label(dataset, DATASET_LABELS)} (%)")
    ax.set_ylabel("GridPG (%)")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    save_figure(fig, out_png)
    return points


def _point(backbone: str, variant: str, method: str, acc, grid, metric_name: str) -> dict[str, object]:
    """One GridPG-vs-accuracy point from the two record entries; unavailable when either is."""
    na = ([] if acc.available else [f"{metric(metric_name).label}: {acc.reason}"]) + ([] if grid.available else
                                                                                    [grid.reason])
    return {"backbone": backbone, "variant": variant, "method": method,
            "accuracy": acc.value * metric(metric_name).scale if acc.available else None,
            "gridpg": grid.value * metric("gridpg").scale if grid.available else None,
            "status": "unavailable" if na else "ok", "reason": "; ".join(na)}
