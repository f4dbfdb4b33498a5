"""Collect result records into one index keyed by table cell, with errors that name the cell.

Record convention for ablations (documented in ``aloe/tables/README.md``): the main runs use
variant "teacher", "bcosification" or "aloe"; an ablation run of ALOE uses the variant string
``"aloe:<axis>=<setting>"`` with axis one of ABLATION_AXES, e.g. "aloe:depths=L",
"aloe:loss=mse", "aloe:data=0.01" (share of the alignment set). A record may instead keep
variant "aloe" and carry ``params["ablation"] = "<axis>=<setting>"``; both spell the same cell.
GridPG records name their attribution method in ``params["method"]``. A record with status
"unavailable" (``aloe.records``) is indexed like any other; its Entry has value None and the
record's reason, which the tables print as "n/a" with a footnote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from aloe.records import STATUS_UNAVAILABLE, read_records, record_status

ABLATION_AXES = ("depths", "loss", "data")


class MissingRecordError(LookupError):
    """A table cell that the table spec requires has no record."""


@dataclass(frozen=True)
class CellKey:
    backbone: str
    variant: str
    dataset: str
    metric: str
    method: str = ""  # attribution method, GridPG records only

    def describe(self) -> str:
        extra = f", method={self.method!r}" if self.method else ""
        return (f"(backbone={self.backbone!r}, variant={self.variant!r}, dataset={self.dataset!r}, "
                f"metric={self.metric!r}{extra})")


@dataclass(frozen=True)
class Entry:
    """One cell's record: ``value`` None when the record is unavailable (``reason`` says why)."""

    value: float | None
    source: str  # the record file
    reason: str = ""
    resolution: float = 0.0  # one test sample in record units (top-1 records: 100 / test images), 0 if unknown

    @property
    def available(self) -> bool:
        return self.value is not None


def parse_variant(variant: str) -> tuple[str, str, str]:
    """"aloe:loss=mse" -> ("aloe", "loss", "mse"); "aloe" -> ("aloe", "", "")."""
    base, sep, ablation = variant.partition(":")
    if not sep:
        return base, "", ""
    axis, eq, setting = ablation.partition("=")
    if not eq or axis not in ABLATION_AXES or not setting:
        raise ValueError(f"variant {variant!r} is not '<variant>:<axis>=<setting>' with axis in {ABLATION_AXES}")
    return base, axis, setting


def ablation_variant(axis: str, setting: str, base: str = "aloe") -> str:
    variant = f"{base}:{axis}={setting}"
    parse_variant(variant)
    return variant


def record_variant(record: Mapping[str, Any]) -> str:
    """The record's variant with a params["ablation"] folded into the variant string."""
    variant = str(record["variant"])
    ablation = (record.get("params") or {}).get("ablation")
    if ablation and ":" not in variant:
        variant = f"{variant}:{ablation}"
    parse_variant(variant)
    return variant


def _resolution(rec: Mapping[str, Any]) -> float:
    """What one test image changes a top-1 record by (percent points), from its test-set size
    (``params.num_test``, or zero-shot's ``num_images``); 0 when the record does not say."""
    params = rec.get("params") or {}
    n = params.get("num_test", params.get("num_images"))
    return 100.0 / n if str(rec["metric"]).endswith("_top1") and isinstance(n, int) and n > 0 else 0.0


class RecordIndex:
    """Record values by CellKey; two records for one cell are an error naming both files."""

    def __init__(self, records: Iterable[tuple[Mapping[str, Any], str]]):
        self._cells: dict[CellKey, Entry] = {}
        self.num_files = 0
        self.protocols: dict[str, set[str]] = {}  # protocol decision -> the choices the records were made with
        self.code_versions: set[str] = set()  # of the records (aloe.records.code_version)
        for rec, source in records:
            self.code_versions.add(str(rec.get("code_version", "unknown")))
            params = rec.get("params") or {}
            for decision, choice in (params.get("protocols") or {}).items():
                self.protocols.setdefault(str(decision), set()).add(str(choice))
            key = CellKey(str(rec["backbone"]), record_variant(rec), str(rec["dataset"]), str(rec["metric"]),
                          str(params.get("method", "")) if rec["metric"] == "gridpg" else "")
            if key in self._cells:
                raise ValueError(f"two records for cell {key.describe()}: {self._cells[key].source} and {source}; "
                                 "pass select= to keep one of them")
            if record_status(rec) == STATUS_UNAVAILABLE:
                self._cells[key] = Entry(None, source, str(rec["reason"]))
            else:
                self._cells[key] = Entry(float(rec["value"]), source, resolution=_resolution(rec))

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike], select: Mapping[str, Any] | None = None) -> "RecordIndex":
        """Read record files; ``select`` keeps records whose params hold these values (when set)."""
        pairs, paths = [], list(paths)
        for path in paths:
            for rec in read_records(path):
                params = rec.get("params") or {}
                if all(k not in params or params[k] == v for k, v in (select or {}).items()):
                    pairs.append((rec, str(path)))
        index = cls(pairs)
        index.num_files = len(paths)
        return index

    def keys(self) -> list[CellKey]:
        return list(self._cells)

    def has(self, key: CellKey) -> bool:
        return key in self._cells

    def get(self, key: CellKey, table: str = "") -> Entry:
        """The cell's Entry (value None when unavailable); MissingRecordError when no record."""
        try:
            return self._cells[key]
        except KeyError:
            where = f"table {table}: " if table else ""
            raise MissingRecordError(f"{where}no record for {key.describe()} among {self.num_files} record "
                                     "file(s)") from None

    def values(self, field: str, **match: str) -> set[str]:
        """Distinct values of CellKey ``field`` over the cells matching ``match``."""
        return {getattr(k, field) for k in self._cells if all(getattr(k, f) == v for f, v in match.items())}


def protocol_caption(protocols: Mapping[str, Iterable[str]]) -> str:
    """"Protocols: knn=dinov2; linear_probe=dinov2." from the records' ``params.protocols`` (several
    choices of one decision, e.g. a table mixing two, are all listed); "" when none is recorded."""
    if not protocols:
        return ""
    parts = [f"{decision}={'/'.join(sorted(choices))}" for decision, choices in sorted(protocols.items())]
    return "Protocols: " + "; ".join(parts) + "."
