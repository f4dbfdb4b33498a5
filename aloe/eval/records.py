"""Result records: each evaluation writes one small JSON file, so the tables stage only collects.

A file holds a JSON list of records (one for single-number evaluations such as LP top-1, several
for the dense probes' metrics); every record has the keys in RECORD_KEYS.
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


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    try:
        version = importlib.metadata.version("aloe")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    repo = Path(__file__).resolve().parents[2]
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
    return {
        "metric": metric,
        "value": value,
        "backbone": backbone,
        "variant": variant,
        "dataset": dataset,
        "params": dict(params or {}),
        "code_version": code_version(),
    }


def write_records(path: str | os.PathLike, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write a list of records (from ``make_record``) atomically to ``path``."""
    for r in records:
        missing = [k for k in RECORD_KEYS if k not in r]
        if missing:
            raise ValueError(f"record for {path} lacks keys {missing}")
    write_json(path, list(records))
    return list(records)


def write_record(path: str | os.PathLike, metric: str, value: float, **kwargs: Any) -> dict[str, Any]:
    """Write a one-record file; keyword args as ``make_record``."""
    return write_records(path, [make_record(metric, value, **kwargs)])[0]


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a record file and check its shape; errors name the file."""
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(r, dict) and set(RECORD_KEYS) <= set(r) for r in data):
        raise ValueError(f"{path} is not a list of result records with keys {RECORD_KEYS}")
    return data
