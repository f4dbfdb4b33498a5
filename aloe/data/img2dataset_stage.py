"""Alignment sets: url list -> img2dataset -> webdataset shards + one checked summary.

img2dataset exits 0 even when most URLs fail, so the stage reads every per-shard
``NNNNN_stats.json``, aggregates them into ``summary.json`` and fails below
``min_success_rate``. img2dataset runs in a subprocess (argument list, config passed as JSON to
its Python API: no shell, no string parsing by ``fire``) so its process pool, signal handlers
and logging stay out of the caller's process; its output goes to ``img2dataset.log`` beside the
shards and, as plain lines with its shard count as progress, to the stage's log
(``aloe.data.img2dataset_output``).

Resume: img2dataset's ``incremental_mode="incremental"`` treats a shard as done when its
``_stats.json`` exists (written after the shard's tar and parquet are closed) and skips it; a
shard cut off by a crash has no stats file and is downloaded again from scratch, overwriting
its partial tar. ``summary.json`` is written last, so its presence marks a finished stage.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from aloe.data.img2dataset_output import run_img2dataset
from aloe.io import read_json, write_json

SUMMARY_FILE = "summary.json"
FAILED_SUMMARY_FILE = "summary.failed.json"
LOG_FILE = "img2dataset.log"
_FORMATS = {".parquet": "parquet", ".tsv": "tsv", ".csv": "csv", ".txt": "txt"}


class SuccessRateError(RuntimeError):
    """Raised when fewer URLs than ``min_success_rate`` were downloaded and decoded."""


def url_list_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz" and len(suffixes) >= 2 and suffixes[-2] in (".tsv", ".csv"):
        return _FORMATS[suffixes[-2]] + ".gz"
    if suffixes and suffixes[-1] in _FORMATS:
        return _FORMATS[suffixes[-1]]
    raise ValueError(
        f"url list {path}: unknown format; expected .parquet, .tsv, .csv, .tsv.gz, .csv.gz or .txt"
    )


def read_url_list_columns(path: Path, fmt: str) -> tuple[list[str], int]:
    """Column names and row count, read before any download starts (streamed, with the same
    pyarrow parser img2dataset uses, so the row count and thus the shard count agree)."""
    if fmt == "parquet":
        return list(pq.read_schema(path).names), pq.ParquetFile(path).metadata.num_rows
    read = pa_csv.ReadOptions(column_names=["url"]) if fmt == "txt" else pa_csv.ReadOptions()
    parse = pa_csv.ParseOptions(delimiter="\t" if fmt.startswith("tsv") else ",")
    reader = pa_csv.open_csv(path, read_options=read, parse_options=parse)
    return list(reader.schema.names), sum(batch.num_rows for batch in reader)


def first_failures(out_dir: Path, by_shard: dict[str, int], first: int = 20) -> list[list[str]]:
    """The first ``first`` failed samples, in (shard, key) order, as [shard, key, error message]:
    img2dataset's per-shard parquet lists every URL of the shard, failed ones with their status."""
    out: list[list[str]] = []
    for shard in sorted(by_shard):
        parquet = out_dir / shard.replace(".tar", ".parquet")
        if len(out) >= first or not parquet.exists():
            continue
        columns = [c for c in ("key", "status", "error_message") if c in pq.read_schema(parquet).names]
        rows = pq.read_table(parquet, columns=columns).to_pylist()
        out += sorted([shard, str(r["key"]), str(r.get("error_message") or r["status"])] for r in rows
                      if r["status"] != "success")
    return out[:first]


def summarize_shards(out_dir: str | os.PathLike, expected_shards: int | None = None) -> dict[str, Any]:
    """Aggregate all ``*_stats.json`` of an img2dataset output folder into one dict: totals, failures
    by reason and by shard (``failures_by_shard``, shards without failures left out), and the first
    failed samples (``failed_first``, from the shards' parquet files)."""
    out_dir = Path(out_dir)
    totals = {"count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0}
    reasons: dict[str, int] = {}
    shards = []
    by_shard: dict[str, int] = {}
    for stats_path in sorted(out_dir.glob("*_stats.json")):
        stats = read_json(stats_path)
        shard = stats_path.name[: -len("_stats.json")]
        shards.append(shard)
        for key in totals:
            totals[key] += int(stats[key])
        for reason, n in stats.get("status_dict", {}).items():
            if reason != "success":
                reasons[reason] = reasons.get(reason, 0) + int(n)
        if int(stats["count"]) > int(stats["successes"]):
            by_shard[f"{shard}.tar"] = int(stats["count"]) - int(stats["successes"])
    missing = []
    if expected_shards is not None:
        present = {int(s) for s in shards}
        missing = [f"{i:05d}" for i in range(expected_shards) if i not in present]
    rate = totals["successes"] / totals["count"] if totals["count"] else 0.0
    return {
        **totals,
        "success_rate": rate,
        "failures_by_reason": dict(sorted(reasons.items())),
        "failures_by_shard": by_shard,
        "failed_first": first_failures(out_dir, by_shard),
        "shards": [f"{s}.tar" for s in shards],
        "missing_shards": missing,
    }


def download_alignment_set(
    url_list: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_size: int,
    resize_mode: str = "center_crop",
    processes: int = 1,
    threads: int = 16,
    samples_per_shard: int = 10000,
    retries: int = 0,
    timeout: int = 10,
    min_success_rate: float = 0.5,
    url_col: str = "url",
    caption_col: str | None = "caption",
    encode_format: str = "jpg",
    encode_quality: int = 95,
) -> dict[str, Any]:
    """Download ``url_list`` into webdataset shards in ``out_dir`` and write ``summary.json``.

    Raises ``SuccessRateError`` (after writing ``summary.failed.json``) when the success rate is
    below ``min_success_rate``, and ``RuntimeError`` when img2dataset fails or leaves shards
    without stats. Returns the summary dict.
    """
    url_list, out_dir = Path(url_list).resolve(), Path(out_dir).resolve()
    if not url_list.is_file():
        raise FileNotFoundError(f"url list not found: {url_list} (config key: url_list)")
    if not 0.0 <= min_success_rate <= 1.0:
        raise ValueError(f"min_success_rate must be in [0, 1], got {min_success_rate}")
    fmt = url_list_format(url_list)
    columns, num_urls = read_url_list_columns(url_list, fmt)
    for key, col in (("url_col", url_col), ("caption_col", caption_col)):
        if col is not None and fmt != "txt" and col not in columns:
            raise ValueError(f"url list {url_list} has no column {col!r} ({key}); columns: {columns}")
    if num_urls == 0:
        raise ValueError(f"url list {url_list} is empty")

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY_FILE).unlink(missing_ok=True)
    (out_dir / FAILED_SUMMARY_FILE).unlink(missing_ok=True)
    options = {
        "url_list": str(url_list),
        "output_folder": str(out_dir),
        "input_format": fmt,
        "url_col": url_col,
        "caption_col": caption_col if fmt != "txt" else None,
        "output_format": "webdataset",
        "image_size": int(image_size),
        "resize_mode": resize_mode,
        "processes_count": int(processes),
        "thread_count": int(threads),
        "number_sample_per_shard": int(samples_per_shard),
        "retries": int(retries),
        "timeout": int(timeout),
        "encode_format": encode_format,
        "encode_quality": int(encode_quality),
        "extract_exif": False,
        "enable_wandb": False,
        "incremental_mode": "incremental",
    }
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    program = "import json, sys; from img2dataset import download; download(**json.loads(sys.argv[1]))"
    expected = math.ceil(num_urls / samples_per_shard)
    returncode = run_img2dataset([sys.executable, "-c", program, json.dumps(options)], env, out_dir / LOG_FILE,
                                 expected)
    if returncode != 0:
        raise RuntimeError(f"img2dataset exited with code {returncode}; see {out_dir / LOG_FILE}")

    summary = summarize_shards(out_dir, expected_shards=expected)
    summary.update(url_list=str(url_list), num_urls=num_urls, min_success_rate=min_success_rate)
    if summary["missing_shards"]:
        write_json(out_dir / FAILED_SUMMARY_FILE, summary)
        raise RuntimeError(
            f"img2dataset left shards {summary['missing_shards']} of {out_dir} unfinished "
            f"(no _stats.json); rerun the stage: finished shards are kept"
        )
    if summary["success_rate"] < min_success_rate:
        write_json(out_dir / FAILED_SUMMARY_FILE, summary)
        raise SuccessRateError(
            f"only {summary['successes']}/{summary['count']} images "
            f"({summary['success_rate']:.1%}) of {url_list} were downloaded, below "
            f"min_success_rate={min_success_rate:.1%}; failures by reason: "
            f"{summary['failures_by_reason']} (details in {out_dir / FAILED_SUMMARY_FILE})"
        )
    write_json(out_dir / SUMMARY_FILE, summary)
    return summary
