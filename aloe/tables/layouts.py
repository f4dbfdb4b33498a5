"""Arrange indexed records into a Table, one function per TableSpec layout.

Every required cell is fetched with ``RecordIndex.get``, which raises MissingRecordError naming
(backbone, variant, dataset, metric); averages fetch every averaged cell, so a missing dataset
can never shrink an average silently.
"""

from __future__ import annotations

from statistics import fmean
from typing import Sequence

from aloe.tables.collect import CellKey, MissingRecordError, RecordIndex, parse_variant
from aloe.tables.model import Block, Cell, Row, Table, mark_best
from aloe.tables.names import (
    ALOE, BACKBONE_LABELS, BACKBONE_ORDER, BCOSIFICATION, DATASET_LABELS, DATASET_ORDER, METHOD_LABELS,
    METHOD_ORDER, SETTING_LABELS, SETTING_ORDER, TEACHER, VARIANT_LABELS, VARIANTS, label, metric, ordered,
)  # fmt: skip
from aloe.tables.paper import PaperNumbers
from aloe.tables.specs import TableSpec

DELTA_LABEL = "Delta (ALOE - B-cosif.)"
DELTA_GRIDPG = "Delta GridPG"
AVG = "avg"


def _keys(index: RecordIndex, metrics: Sequence[str], variant_ok) -> list[CellKey]:
    return [k for k in index.keys() if k.metric in metrics and variant_ok(k.variant)]


def _axes(name: str, keys: list[CellKey], backbones, datasets) -> tuple[list[str], list[str]]:
    backbones = list(backbones) if backbones else ordered({k.backbone for k in keys}, BACKBONE_ORDER)
    datasets = list(datasets) if datasets else ordered({k.dataset for k in keys}, DATASET_ORDER)
    if not backbones or not datasets:
        raise MissingRecordError(f"table {name}: no records match (check the record files and select=)")
    return backbones, datasets


def _value(index: RecordIndex, key: CellKey, table: str) -> float:
    return index.get(key, table) * metric(key.metric).scale


def _mean_cell(index, table, backbone, variant, datasets, m) -> Cell:
    values = [_value(index, CellKey(backbone, variant, d, m), table) for d in datasets]
    one = len(datasets) == 1
    return Cell(fmean(values), backbone, variant, datasets[0] if one else AVG, m, "measured" if one else "average")


def _paper_row(text: str, cells: list[Cell | None]) -> Row | None:
    return Row(f"paper: {text}", "paper", cells) if any(c is not None for c in cells) else None


def _paper_cell(value: float | None, backbone, variant, dataset, m) -> Cell | None:
    return None if value is None else Cell(value, backbone, variant, dataset, m, "paper")


def _delta_row(aloe: Row, bcos: Row) -> Row:
    cells = [Cell(a.value - b.value, a.backbone, f"{ALOE}-{BCOSIFICATION}", a.dataset, a.metric, "delta")
             for a, b in zip(aloe.cells, bcos.cells)]  # fmt: skip
    return Row(DELTA_LABEL, "delta", cells)


def grid_table(name: str, spec: TableSpec, index: RecordIndex, paper: PaperNumbers, *, backbones=None,
               datasets=None) -> Table:  # fmt: skip
    """Teacher, B-cosification and ALOE rows per backbone; datasets or metrics as columns."""
    keys = _keys(index, spec.metrics, lambda v: v in VARIANTS)
    backbones, datasets = _axes(name, keys, backbones, datasets)
    if spec.columns == "metric":
        if len(datasets) != 1:
            raise ValueError(f"table {name} shows one dataset; records hold {datasets}: pass datasets=[...]")
        columns = [(metric(m).label, m, datasets) for m in spec.metrics]
    else:
        m = spec.metrics[0]
        shown = datasets[:1] if spec.first_dataset_only else datasets
        columns = [(label(d, DATASET_LABELS), m, [d]) for d in shown]
        if spec.average:
            columns.append(("Avg.", m, datasets))
    blocks = []
    for b in backbones:
        rows: dict[str, Row] = {}
        for v in VARIANTS:
            present = any(k.backbone == b and k.variant == v and k.dataset in datasets for k in keys)
            if v in spec.optional_variants and not present:
                continue
            cells = [_mean_cell(index, name, b, v, ds, m) for _, m, ds in columns]
            rows[v] = Row(VARIANT_LABELS[v], "teacher" if v == TEACHER else "student", list(cells))
        for j in range(len(columns)):
            mark_best([r.cells[j] for v, r in rows.items() if v != TEACHER])
        block = Block(label(b, BACKBONE_LABELS), list(rows.values()))
        if ALOE in rows and BCOSIFICATION in rows:
            block.rows.append(_delta_row(rows[ALOE], rows[BCOSIFICATION]))
        for v in rows:
            cells = [_paper_cell(paper.average(b, v, ds, m), b, v, ds[0] if len(ds) == 1 else AVG, m)
                     for _, m, ds in columns]  # fmt: skip
            row = _paper_row(VARIANT_LABELS[v], cells)
            if row:
                block.rows.append(row)
        blocks.append(block)
    return Table(name, "Model", [c[0] for c in columns], blocks)


def ablation_table(name: str, spec: TableSpec, index: RecordIndex, paper: PaperNumbers, *, backbones=None,
                   datasets=None) -> Table:  # fmt: skip
    """One ALOE row per backbone, one column per ablation setting, mean over datasets."""
    m = spec.metrics[0]
    keys = _keys(index, (m,), lambda v: parse_variant(v)[0] == ALOE and parse_variant(v)[1] == spec.axis)
    backbones, datasets = _axes(name, keys, backbones, datasets)
    settings = ordered({parse_variant(k.variant)[2] for k in keys if k.backbone in backbones},
                       SETTING_ORDER.get(spec.axis, ()))  # fmt: skip
    variants = [f"{ALOE}:{spec.axis}={s}" for s in settings]
    block = Block(None)
    for b in backbones:
        row = Row(label(b, BACKBONE_LABELS), "student", [_mean_cell(index, name, b, v, datasets, m) for v in variants])
        mark_best(row.cells)
        block.rows.append(row)
        cells = [_paper_cell(paper.average(b, v, datasets, m), b, v, datasets[0] if len(datasets) == 1 else AVG, m)
                 for v in variants]  # fmt: skip
        paper_row = _paper_row(label(b, BACKBONE_LABELS), cells)
        if paper_row:
            block.rows.append(paper_row)
    columns = [label(s, SETTING_LABELS.get(spec.axis, {})) for s in settings]
    return Table(name, "Backbone", columns, [block])


def gridpg_table(name: str, spec: TableSpec, index: RecordIndex, paper: PaperNumbers, *, backbones=None,
                 datasets=None) -> Table:  # fmt: skip
    """Table B6: per backbone, LP and k-NN of teacher and ALOE on the first dataset, GridPG of each
    teacher attribution method (absent methods print "--"), ALOE's B-cos GridPG, and ALOE minus
    the best teacher method."""
    grid_keys = [k for k in index.keys() if k.metric == "gridpg" and k.variant in (TEACHER, ALOE)]
    backbones = list(backbones) if backbones else ordered({k.backbone for k in grid_keys}, BACKBONE_ORDER)
    rec_keys = _keys(index, ("lp_top1", "knn_top1"), lambda v: v in (TEACHER, ALOE))
    _, rec_datasets = _axes(name, rec_keys or grid_keys, backbones, datasets)
    rec = rec_datasets[0]
    methods = ordered({k.method for k in grid_keys if k.variant == TEACHER and k.backbone in backbones}, METHOD_ORDER)
    columns = ["LP Teacher", "LP ALOE", "k-NN Teacher", "k-NN ALOE"]
    columns += [f"GridPG {label(m, METHOD_LABELS)}" for m in methods] + ["GridPG ALOE", DELTA_GRIDPG]
    block = Block(None)
    for b in backbones:
        grid_sets = sorted({k.dataset for k in grid_keys if k.backbone == b})
        if len(grid_sets) > 1:
            raise ValueError(f"table {name}: GridPG records of {b!r} come from several datasets {grid_sets}")
        gd = grid_sets[0] if grid_sets else rec
        cells: list[Cell | None] = []
        for m in ("lp_top1", "knn_top1"):
            for v in (TEACHER, ALOE):
                cells.append(Cell(_value(index, CellKey(b, v, rec, m), name), b, v, rec, m))
        teacher = []
        for meth in methods:
            key = CellKey(b, TEACHER, gd, "gridpg", meth)
            cell = Cell(_value(index, key, name), b, TEACHER, gd, f"gridpg/{meth}") if index.has(key) else None
            teacher += [cell] if cell else []
            cells.append(cell)
        if not teacher:
            raise MissingRecordError(f"table {name}: no teacher GridPG record (any method) for backbone={b!r} "
                                     f"dataset={gd!r} metric='gridpg'")  # fmt: skip
        ours = Cell(_value(index, CellKey(b, ALOE, gd, "gridpg", "bcos"), name), b, ALOE, gd, "gridpg/bcos")
        best = max(teacher, key=lambda c: c.value)
        cells += [ours, Cell(ours.value - best.value, b, f"{ALOE}-best_teacher", gd, "gridpg", "delta")]
        row = Row(label(b, BACKBONE_LABELS), "student", cells)
        # bold ALOE's GridPG when it beats every post-hoc teacher method; teachers are never bold
        ours.bold = ours.value > best.value
        block.rows.append(row)
        p = [paper.get(b, c.variant, c.dataset, c.metric) if c else None for c in cells[:-1]]
        pcells = [_paper_cell(x, b, c.variant, c.dataset, c.metric) if c else None for x, c in zip(p, cells[:-1])]
        # paper teacher methods absent from the measured columns are not shown
        paper_row = _paper_row(label(b, BACKBONE_LABELS), pcells + [None])
        if paper_row:
            block.rows.append(paper_row)
    return Table(name, "Backbone", columns, [block])


LAYOUT_FUNCTIONS = {"grid": grid_table, "ablation": ablation_table, "gridpg": gridpg_table}
