"""The paper's own numbers (``paper_numbers.json``), looked up per table cell.

Values are in the tables' display units. Dataset "avg" stands for the paper's ten-dataset mean
and is only matched when a table averages over exactly those datasets; dataset "*" matches any.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

from aloe.io import read_json
from aloe.tables.names import PAPER_AVG_DATASETS

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.json")


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, dict[tuple[str, str, str, str], float]]:
    tables = read_json(path)["tables"]
    return {name: {(e["backbone"], e["variant"], e["dataset"], e["metric"]): float(e["value"]) for e in entries}
            for name, entries in tables.items()}  # fmt: skip


class PaperNumbers:
    """Lookup for one table; ``enabled=False`` answers None everywhere."""

    def __init__(self, table: str, enabled: bool = True, path: str | Path = PAPER_NUMBERS):
        self._cells = _load(str(path)).get(table, {}) if enabled else {}

    def get(self, backbone: str, variant: str, dataset: str, metric: str) -> float | None:
        for key in ((backbone, variant, dataset, metric), (backbone, variant, "*", metric)):
            if key in self._cells:
                return self._cells[key]
        return None

    def average(self, backbone: str, variant: str, datasets: Sequence[str], metric: str) -> float | None:
        """The paper's mean, when ``datasets`` are the paper's own averaged set (or a single dataset)."""
        if len(datasets) == 1:
            return self.get(backbone, variant, datasets[0], metric)
        if frozenset(datasets) == PAPER_AVG_DATASETS:
            return self.get(backbone, variant, "avg", metric)
        return None
