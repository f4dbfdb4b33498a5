"""Result records: each evaluation (``aloe.eval``) writes one small JSON file, so the tables stage
(``aloe.tables``, which imports nothing of ``aloe.eval``) only collects.

A file holds a JSON list of records (one for single-number evaluations such as LP top-1, several
for the dense probes' metrics); every record has the keys in RECORD_KEYS, plus ``status``:

* ``"ok"``: ``value`` is a finite number (records without ``status``, from older code, read as ok);
* ``"unavailable"``: the evaluation ran but its data cannot give the number (e.g. GridPG with
  confident images of fewer than 4 classes). ``value`` is null, ``reason`` says why in one
  sentence and ``counts`` holds the numbers behind it. Stages raise ``MetricUnavailable`` and
  write such a record with ``make_unavailable_record``; genuine errors still raise.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from aloe.io import read_json, write_json

RECORD_KEYS = ("metric", "value", "backbone", "variant", "dataset", "params", "code_version")
STATUS_OK, STATUS_UNAVAILABLE = "ok", "unavailable"
# The explanation grid's panels are no metric: their own record (aloe.eval.explanation_panels
# writes it, aloe.tables.explanations reads it) carries this format tag.
PANELS_FORMAT = "aloe.explanation_panels/1"


class MetricUnavailable(Exception):
    """The data cannot give this metric (not a bug): ``reason`` says why, ``counts`` the numbers behind it."""

    def __init__(self, reason: str, counts: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.counts = dict(counts or {})


class NotEnoughData(MetricUnavailable):
    """Too few usable samples (e.g. confidently classified images of too few classes)."""


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    try:
        version = importlib.metadata.version("aloe")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return version
    commit = out.stdout.strip()
    return f"{version}+g{commit}" if out.returncode == 0 and commit else version


def make_record(
    metric: str,
    value: float,
    *,
    backbone: str,
    variant: str,
    dataset: str,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a record; a non-finite value is refused because it would poison the tables."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"metric {metric!r} for {backbone}/{variant}/{dataset} is {value}")
    return _record(metric, value, STATUS_OK, backbone=backbone, variant=variant, dataset=dataset, params=params)


def make_unavailable_record(
    metric: str,
    error: MetricUnavailable,
    *,
    backbone: str,
    variant: str,
    dataset: str,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A record saying why ``metric`` has no value: value None, status "unavailable", reason, counts."""
    if not error.reason:
        raise ValueError(f"unavailable metric {metric!r} for {backbone}/{variant}/{dataset} needs a reason")
    rec = _record(metric, None, STATUS_UNAVAILABLE, backbone=backbone, variant=variant, dataset=dataset, params=params)
    rec.update(reason=error.reason, counts=dict(error.counts))
    return rec


def _record(metric, value, status, *, backbone, variant, dataset, params) -> dict[str, Any]:
    return {"metric": metric, "value": value, "status": status, "backbone": backbone, "variant": variant,
            "dataset": dataset, "params": dict(params or {}), "code_version": code_version()}


def record_status(record: dict[str, Any]) -> str:
    return str(record.get("status", STATUS_OK))


def check_record(record: Any) -> str:
    """'' when ``record`` has the record format (either status), else what is wrong with it."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        return f"lacks keys {missing}"
    status, value = record_status(record), record["value"]
    if status == STATUS_OK:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return "" if ok else f"status 'ok' with value {value!r} (a finite number is needed)"
    if status == STATUS_UNAVAILABLE:
        if value is not None:
            return f"status 'unavailable' with value {value!r} (null is needed)"
        if not isinstance(record.get("reason"), str) or not record["reason"]:
            return "status 'unavailable' without a reason"
        return "" if isinstance(record.get("counts"), dict) else "status 'unavailable' without counts"
    return f"unknown status {status!r} (one of {STATUS_OK!r}, {STATUS_UNAVAILABLE!r})"


def write_records(path: str | os.PathLike, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write a list of records (from ``make_record``) atomically to ``path``."""
    for r in records:
        problem = check_record(r)
        if problem:
            raise ValueError(f"record for {path}: {problem}")
    write_json(path, list(records))
    return list(records)


def write_record(path: str | os.PathLike, metric: str, value: float, **kwargs: Any) -> dict[str, Any]:
    """Write a one-record file; keyword args as ``make_record``."""
    return write_records(path, [make_record(metric, value, **kwargs)])[0]


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a record file and check its shape; errors name the file."""
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path} is not a list of result records with keys {RECORD_KEYS}")
    for i, r in enumerate(data):
        problem = check_record(r)
        if problem:
            raise ValueError(f"{path} is not a list of result records with keys {RECORD_KEYS}: record {i} {problem}")
    return data
