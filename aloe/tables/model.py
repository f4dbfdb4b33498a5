"""The in-memory table both writers read: blocks of labelled rows of cells, in print order."""

from __future__ import annotations

from dataclasses import dataclass, field

from aloe.tables.names import metric

# Row kinds: the LaTeX writer greys "teacher" rows and italicises "paper" rows.
ROW_KINDS = ("teacher", "student", "delta", "paper")
NA = "n/a"  # printed for a cell whose record says the data cannot give the number


@dataclass
class Cell:
    """One printed number. ``value`` is in display units (record value * metric scale); None when
    the record (or a record it is computed from) is unavailable: printed "n/a", ``note`` says why.
    ``note`` on a number is a remark printed as a footnote (e.g. a paper value that is likely a typo)."""

    value: float | None
    backbone: str
    variant: str
    dataset: str
    metric: str  # record metric; "gridpg/<method>" names a GridPG cell's attribution method
    source: str = "measured"  # measured | average | delta | paper
    bold: bool = False
    note: str = ""
    resolution: float = 0.0  # the smallest difference the data can show, display units (0: unknown)

    def __post_init__(self) -> None:
        if self.value is None and not self.note:
            raise ValueError(f"n/a cell {self.backbone}/{self.variant}/{self.dataset}/{self.metric} needs a note")

    @property
    def available(self) -> bool:
        return self.value is not None

    @property
    def base_metric(self) -> str:
        return self.metric.split("/")[0]

    def text(self) -> str:
        """The printed number (without footnote mark)."""
        if self.value is None:
            return NA
        decimals = metric(self.base_metric).decimals
        return f"{self.value:+.{decimals}f}" if self.source == "delta" else f"{self.value:.{decimals}f}"


@dataclass
class Row:
    label: str  # plain text; the writers escape it
    kind: str
    cells: list[Cell | None]

    def __post_init__(self) -> None:
        if self.kind not in ROW_KINDS:
            raise ValueError(f"row kind {self.kind!r} not in {ROW_KINDS}")


@dataclass
class Block:
    title: str | None
    rows: list[Row] = field(default_factory=list)


@dataclass
class Table:
    name: str
    stub: str  # header of the label column
    columns: list[str]  # plain-text column headers
    blocks: list[Block]
    protocols: dict[str, set[str]] = field(default_factory=dict)  # of the records it shows
    code_versions: set[str] = field(default_factory=set)  # of the records it was built from

    def check(self) -> None:
        for block in self.blocks:
            for row in block.rows:
                if len(row.cells) != len(self.columns):
                    raise ValueError(f"table {self.name}: row {row.label!r} has {len(row.cells)} cells for "
                                     f"{len(self.columns)} columns")

    def footnotes(self) -> list[str]:
        """The distinct cell notes in print order; footnote k (1-based) is ``footnotes()[k - 1]``."""
        notes: dict[str, None] = {}
        for block in self.blocks:
            for row in block.rows:
                for cell in row.cells:
                    if cell is not None and cell.note:
                        notes.setdefault(cell.note)
        return list(notes)


def mark_best(cells: list[Cell | None], *, min_candidates: int = 2) -> None:
    """Bold the best of ``cells`` and every cell tied with it, where a tie is a difference no
    larger than the cells' resolution (one test image: ``Cell.resolution``). When every candidate
    ties, nothing is bold: the data does not separate them. n/a cells do not compete; fewer than
    ``min_candidates`` numbers: no bold."""
    cells = [c for c in cells if c is not None and c.available]
    if len(cells) < min_candidates:
        return
    sign = 1.0 if metric(cells[0].base_metric).higher_is_better else -1.0
    best = max(cells, key=lambda c: sign * c.value)
    tied = [c for c in cells if sign * (best.value - c.value) <= max(best.resolution, c.resolution) + 1e-9]
    if len(tied) == len(cells) and best.resolution + max(c.resolution for c in cells) > 0:
        return
    for c in tied:
        c.bold = True
