"""Arrange indexed records into a Table, one function per TableSpec layout.

Every required cell is fetched with ``RecordIndex.get``, which raises MissingRecordError naming
(backbone, variant, dataset, metric); averages fetch every averaged cell, so a missing dataset
can never shrink an average silently. An unavailable record gives an "n/a" cell whose note is the
record's reason; an average or a delta over an n/a cell is n/a too (with a note saying which), and
n/a cells never compete for bold.
"""

from __future__ import annotations

from statistics import fmean
from typing import Sequence

from aloe.tables.collect import CellKey, MissingRecordError, RecordIndex, parse_variant
from aloe.tables.model import Block, Cell, Row, Table, mark_best
from aloe.tables.names import (
    ALOE, BACKBONE_LABELS, BACKBONE_ORDER, BCOSIFICATION, DATASET_LABELS, DATASET_ORDER, METHOD_LABELS,
    METHOD_ORDER, SETTING_LABELS, SETTING_ORDER, TEACHER, VARIANT_LABELS, VARIANTS, label, metric, ordered,
)
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


def _cell(index: RecordIndex, key: CellKey, table: str, shown_metric: str = "") -> Cell:
    """The cell of ``key`` in display units; n/a (value None, note = the record's reason) when unavailable."""
    entry = index.get(key, table)
    value = None if entry.value is None else entry.value * metric(key.metric).scale
    return Cell(value, key.backbone, key.variant, key.dataset, shown_metric or key.metric, note=entry.reason,
                resolution=entry.resolution * metric(key.metric).scale)


def _notes(cells: Sequence[Cell]) -> str:
    """The distinct notes of n/a ``cells``, joined: the note of a cell computed from them."""
    return "; ".join(dict.fromkeys(c.note for c in cells if not c.available))


def _mean_cell(index, table, backbone, variant, datasets, m) -> Cell:
    cells = [_cell(index, CellKey(backbone, variant, d, m), table) for d in datasets]
    if len(cells) == 1:
        return cells[0]
    na = [c for c in cells if not c.available]
    if na:
        names = ", ".join(label(c.dataset, DATASET_LABELS) for c in na)
        note = f"Avg. over {len(cells)} datasets, n/a for {names}: {_notes(na)}"
        return Cell(None, backbone, variant, AVG, m, "average", note=note)
    # one test image in each dataset moves the mean by the mean of their resolutions
    return Cell(fmean(c.value for c in cells), backbone, variant, AVG, m, "average",
                resolution=fmean(c.resolution for c in cells))


def _difference(a: Cell, b: Cell, variant: str) -> Cell:
    """a - b as a delta cell; n/a (with the inputs' notes) when either is n/a."""
    if a.available and b.available:
        return Cell(a.value - b.value, a.backbone, variant, a.dataset, a.metric, "delta")
    return Cell(None, a.backbone, variant, a.dataset, a.metric, "delta", note=_notes([a, b]))


def _paper_row(text: str, cells: list[Cell | None]) -> Row | None:
    return Row(f"paper: {text}", "paper", cells) if any(c is not None for c in cells) else None


def _paper_cell(paper: PaperNumbers, backbone, variant, datasets, m) -> Cell | None:
    found = paper.lookup(backbone, variant, datasets, m)
    dataset = datasets[0] if len(datasets) == 1 else AVG
    return None if found is None else Cell(found[0], backbone, variant, dataset, m, "paper", note=found[1])


def _delta_row(aloe: Row, bcos: Row) -> Row:
    cells = [_difference(a, b, f"{ALOE}-{BCOSIFICATION}") for a, b in zip(aloe.cells, bcos.cells)]
    return Row(DELTA_LABEL, "delta", cells)


def grid_table(name: str, spec: TableSpec, index: RecordIndex, paper: PaperNumbers, *, backbones=None,
               datasets=None) -> Table:
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
            row = _paper_row(VARIANT_LABELS[v], [_paper_cell(paper, b, v, ds, m) for _, m, ds in columns])
            if row:
                block.rows.append(row)
        blocks.append(block)
    return Table(name, "Model", [c[0] for c in columns], blocks)


def ablation_table(name: str, spec: TableSpec, index: RecordIndex, paper: PaperNumbers, *, backbones=None,
                   datasets=None) -> Table:
    """One ALOE row per backbone, one column per ablation setting, mean over datasets."""
    m = spec.metrics[0]
    keys = _keys(index, (m,), lambda v: parse_variant(v)[0] == ALOE and parse_variant(v)[1] == spec.axis)
    backbones, datasets = _axes(name, keys, backbones, datasets)
    settings = ordered({parse_variant(k.variant)[2] for k in keys if k.backbone in backbones},
                       SETTING_ORDER.get(spec.axis, ()))
    variants = [f"{ALOE}:{spec.axis}={s}" for s in settings]
    block = Block(None)
    for b in backbones:
        row = Row(label(b, BACKBONE_LABELS), "student", [_mean_cell(index, name, b, v, datasets, m) for v in variants])
        mark_best(row.cells)
        block.rows.append(row)
        paper_row = _paper_row(label(b, BACKBONE_LABELS), [_paper_cell(paper, b, v, datasets, m) for v in variants])
        if paper_row:
            block.rows.append(paper_row)
    columns = [label(s, SETTING_LABELS.get(spec.axis, {})) for s in settings]
    return Table(name, "Backbone", columns, [block])


def gridpg_table(name: str, spec: TableSpec, index: RecordIndex, paper: PaperNumbers, *, backbones=None,
                 datasets=None) -> Table:
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
                cells.append(_cell(index, CellKey(b, v, rec, m), name))
        teacher = []
        for meth in methods:
            key = CellKey(b, TEACHER, gd, "gridpg", meth)
            cell = _cell(index, key, name, f"gridpg/{meth}") if index.has(key) else None
            teacher += [cell] if cell else []
            cells.append(cell)
        if not teacher:
            raise MissingRecordError(f"table {name}: no teacher GridPG record (any method) for backbone={b!r} "
                                     f"dataset={gd!r} metric='gridpg'")
        ours = _cell(index, CellKey(b, ALOE, gd, "gridpg", "bcos"), name, "gridpg/bcos")
        cells += [ours, _gridpg_delta(ours, teacher)]
        block.rows.append(Row(label(b, BACKBONE_LABELS), "student", cells))
        pcells = [_paper_cell(paper, b, c.variant, [c.dataset], c.metric) if c else None for c in cells[:-1]]
        # paper teacher methods absent from the measured columns are not shown
        paper_row = _paper_row(label(b, BACKBONE_LABELS), pcells + [None])
        if paper_row:
            block.rows.append(paper_row)
    return Table(name, "Backbone", columns, [block])


def _gridpg_delta(ours: Cell, teacher: list[Cell]) -> Cell:
    """ALOE's GridPG minus the best teacher method that has a value (n/a teacher methods are left
    out); bolds ALOE's GridPG when it beats every such method. Teachers are never bold."""
    scored = [c for c in teacher if c.available]
    if not scored:
        return Cell(None, ours.backbone, f"{ALOE}-best_teacher", ours.dataset, "gridpg", "delta",
                    note=_notes(teacher))
    best = max(scored, key=lambda c: c.value)
    delta = _difference(ours, best, f"{ALOE}-best_teacher")
    delta.metric = "gridpg"
    ours.bold = ours.available and ours.value > best.value
    return delta


LAYOUT_FUNCTIONS = {"grid": grid_table, "ablation": ablation_table, "gridpg": gridpg_table}
