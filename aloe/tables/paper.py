"""The paper's own numbers (``paper_numbers.json``), looked up per table cell.

Values are in the tables' display units. Dataset "avg" stands for the paper's ten-dataset mean
and is only matched when a table averages over exactly those datasets; dataset "*" matches any.
An entry may carry a ``note`` (e.g. "paper value as printed; likely typo ..."): the rendered
table shows it as a footnote on that paper cell. ``tests/tables/test_paper_numbers.py`` checks
every entry against the paper's text.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

from aloe.io import read_json
from aloe.tables.names import PAPER_AVG_DATASETS

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.json")

Key = tuple[str, str, str, str]


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, dict[Key, tuple[float, str]]]:
    tables = read_json(path)["tables"]
    return {name: {(e["backbone"], e["variant"], e["dataset"], e["metric"]): (float(e["value"]), str(e.get("note", "")))
                   for e in entries}
            for name, entries in tables.items()}


class PaperNumbers:
    """Lookup for one table; ``enabled=False`` answers None everywhere."""

    def __init__(self, table: str, enabled: bool = True, path: str | Path = PAPER_NUMBERS):
        self._cells = _load(str(path)).get(table, {}) if enabled else {}

    def _entry(self, backbone: str, variant: str, dataset: str, metric: str) -> tuple[float, str] | None:
        for key in ((backbone, variant, dataset, metric), (backbone, variant, "*", metric)):
            if key in self._cells:
                return self._cells[key]
        return None

    def lookup(self, backbone: str, variant: str, datasets: Sequence[str], metric: str) -> tuple[float, str] | None:
        """(value, note) of the paper's cell for one dataset, or its mean when ``datasets`` are the
        paper's own averaged set; None when the paper has no such number."""
        if len(datasets) == 1:
            return self._entry(backbone, variant, datasets[0], metric)
        if frozenset(datasets) == PAPER_AVG_DATASETS:
            return self._entry(backbone, variant, "avg", metric)
        return None

    def get(self, backbone: str, variant: str, dataset: str, metric: str) -> float | None:
        entry = self._entry(backbone, variant, dataset, metric)
        return None if entry is None else entry[0]

    def note(self, backbone: str, variant: str, dataset: str, metric: str) -> str:
        entry = self._entry(backbone, variant, dataset, metric)
        return "" if entry is None else entry[1]

    def average(self, backbone: str, variant: str, datasets: Sequence[str], metric: str) -> float | None:
        """The paper's mean, when ``datasets`` are the paper's own averaged set (or a single dataset)."""
        entry = self.lookup(backbone, variant, datasets, metric)
        return None if entry is None else entry[0]
