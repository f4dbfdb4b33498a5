"""The data-quality table: every damaged or skipped sample the stages counted, read from their records.

Each stage that reads data counts the samples it could not use, once per (shard, key)
(``aloe.data.damage.SkipCounter``), and stores the counts in its record. This module only reads
those records (no model, no shard is opened) and writes one row per (stage, item, split):

* ``download``: an alignment set's ``shards/summary.json`` (img2dataset; ``count`` URLs,
  ``count - successes`` gave no image; reasons are img2dataset's error messages);
* ``subset``: a subset's ``subset.json`` (requested keys; damaged source samples ``skipped`` plus
  listed keys that no shard holds, ``not_in_shards``);
* ``train``: an alignment or baseline run's ``result.json`` (``damaged_samples`` of the training
  and held-out splits);
* ``features``: a feature cache's safetensors header (``extra.skipped``; the header only).

Columns: ``stage, item, split, samples`` (distinct samples expected), ``damaged``, ``share``
(damaged / samples), ``reasons`` ("corrupt_image: 3; missing_sample: 1"), ``shards_affected``,
``first_keys`` (up to five damaged samples as ``shard:key``), ``notes`` (shard notes such as
``truncated_tar``, or why a number is n/a) and ``record`` (the file read). A record written before
the stage counted damage gives "n/a" in the cells it cannot fill instead of failing.
"""

from __future__ import annotations

import json
import logging
import os
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
from safetensors import safe_open

from aloe.io import read_json, write_text
from aloe.tables.html import STYLE

_log = logging.getLogger(__name__)

NA = "n/a"
FIRST = 5  # damaged keys shown per row
STAGES = ("download", "subset", "train", "features")
TEXT = ("stage", "item", "split", "reasons", "first_keys", "notes")  # left-aligned in HTML
COLUMNS = ("stage", "item", "split", "samples", "damaged", "share", "reasons", "shards_affected", "first_keys",
           "notes", "record")


def _item(path: Path, anchor: str, drop: Sequence[str] = ()) -> str:
    """The record's folder below the last ``anchor`` folder of its path (``demo_vit/main/lr0.001``)."""
    parts = path.parent.parts
    rest = parts[len(parts) - parts[::-1].index(anchor):] if anchor in parts else parts[-1:]
    return "/".join(p for p in rest if p not in drop) or path.parent.name


def _keys(first: Iterable[Sequence[str]]) -> str:
    return "; ".join(f"{shard}:{key}" for shard, key, *_ in list(first)[:FIRST])


def _row(stage: str, item: str, split: str, record: Path, samples: int, damaged: int, reasons: Mapping[str, int],
         shards: int | str, first: Sequence[Sequence[str]] | None, notes: str = "") -> dict[str, Any]:
    return {
        "stage": stage, "item": item, "split": split, "samples": samples, "damaged": damaged,
        "share": damaged / samples if samples else NA,
        "reasons": "; ".join(f"{r}: {n}" for r, n in sorted(reasons.items())),
        "shards_affected": shards,
        "first_keys": NA if first is None and damaged else _keys(first or []),
        "notes": notes or ("" if samples else "no sample of this split was read"), "record": str(record),
        "_reasons": dict(reasons),
    }


def _na_row(stage: str, item: str, split: str, record: Path, why: str) -> dict[str, Any]:
    row = {c: NA for c in COLUMNS}
    row.update(stage=stage, item=item, split=split, notes=why, record=str(record), _reasons={})
    return row


def _notes(counts: Mapping[str, Any]) -> str:
    """Shard-level notes of ``SkipCounter.as_dict()`` data: "000003.tar: truncated_tar"."""
    return "; ".join(f"{s}: {', '.join(n)}" for s, n in sorted(counts.get("shard_notes", {}).items()))


def _counter_row(stage: str, item: str, split: str, record: Path, counts: Any, why: str) -> dict[str, Any]:
    """A row from ``SkipCounter.as_dict()`` data (n/a when the record has no such counts)."""
    if not isinstance(counts, Mapping) or "total" not in counts or "samples" not in counts:
        return _na_row(stage, item, split, record, why)
    shards = len(counts["by_shard"]) if "by_shard" in counts else NA
    return _row(stage, item, split, record, int(counts["samples"]), int(counts["total"]),
                counts.get("by_reason", {}), shards, counts.get("first_keys"), _notes(counts))


def download_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """An alignment set's ``summary.json`` (``aloe.data.img2dataset_stage.summarize_shards``)."""
    path = Path(path)
    summary, item = read_json(path), _item(path, "alignment_sets", drop=("shards",))
    if "count" not in summary or "successes" not in summary:
        return [_na_row("download", item, "all", path, "the summary holds no download counts")]
    count, failed = int(summary["count"]), int(summary["count"]) - int(summary["successes"])
    by_shard = summary.get("failures_by_shard")
    notes = "" if by_shard is not None or not failed else "summary written before failures were kept by shard and key"
    return [_row("download", item, "all", path, count, failed, summary.get("failures_by_reason", {}),
                 NA if by_shard is None else len(by_shard), summary.get("failed_first"), notes)]


def subset_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A subset's ``subset.json`` (``aloe.data.subsets.materialize_subset``)."""
    path = Path(path)
    record, item = read_json(path), _item(path, "alignment_sets")
    skipped = record.get("skipped")
    if not isinstance(skipped, Mapping) or "total" not in skipped or "requested" not in record:
        return [_na_row("subset", item, "all", path, "the record holds no counts of skipped samples")]
    lost = int(record.get("not_in_shards", 0))
    reasons = dict(skipped.get("by_reason", {}), **({"not_in_shards": lost} if lost else {}))
    first = skipped.get("first_keys")
    if first is not None:
        first = list(first) + [["(no shard)", k] for k in record.get("not_in_shards_first", [])]
    shards = len(skipped["by_shard"]) if "by_shard" in skipped else NA
    return [_row("subset", item, "all", path, int(record["requested"]), int(skipped["total"]) + lost, reasons,
                 shards, first, _notes(skipped))]


def train_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """An alignment or baseline run's ``result.json`` (``aloe.align.train``, copied by ``AlignJob``)."""
    path = Path(path)
    record, item = read_json(path), _item(path, "align")
    damaged = record.get("damaged_samples")
    if not isinstance(damaged, Mapping):
        return [_na_row("train", item, "all", path, "the run's record holds no damaged-sample counts")]
    return [_counter_row("train", item, split, path, damaged.get(split), f"no counts of the {split} split")
            for split in ("train", "heldout")]


def feature_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A feature cache's header (``aloe.eval.features.save_features``: metadata ``extra.skipped``)."""
    path = Path(path)
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata() or {})
    split = json.loads(meta["provenance"]).get("split", path.stem) if "provenance" in meta else path.stem
    skipped = json.loads(meta.get("extra", "{}")).get("skipped")
    return [_counter_row("features", _item(path, "features"), split, path, skipped,
                         "the cache's header holds no counts of skipped samples")]


def stage_summaries(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per stage: records, summed samples and damaged samples, reasons, records without counts."""
    lines = []
    for stage in STAGES:
        mine = [r for r in rows if r["stage"] == stage]
        if not mine:
            continue
        counted = [r for r in mine if r["samples"] != NA]
        samples, damaged = sum(int(r["samples"]) for r in counted), sum(int(r["damaged"]) for r in counted)
        reasons: dict[str, int] = {}
        for r in counted:
            for reason, n in r["_reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + int(n)
        share = f"{100 * damaged / samples:.2f} %" if samples else NA
        text = (f"{stage}: {len({r['record'] for r in mine})} record(s), {len(counted)} row(s) with counts: "
                f"{damaged} of {samples} samples damaged ({share})")
        if reasons:
            text += "; " + "; ".join(f"{r}: {n}" for r, n in sorted(reasons.items()))
        if len(counted) < len(mine):
            text += f"; {len(mine) - len(counted)} row(s) n/a (record without counts)"
        lines.append(text)
    return lines


def data_quality_rows(downloads: Iterable[str | os.PathLike] = (), subsets: Iterable[str | os.PathLike] = (),
                      runs: Iterable[str | os.PathLike] = (),
                      features: Iterable[str | os.PathLike] = ()) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for read, paths in ((download_rows, downloads), (subset_rows, subsets), (train_rows, runs),
                        (feature_rows, features)):
        for path in paths:
            rows += read(path)
    return rows


def _cell(column: str, value: Any) -> str:
    if value == NA:
        return '<td class="na">n/a</td>'
    if column == "share":
        return f"<td>{100 * float(value):.2f} %</td>"
    text = escape(str(value))
    return f'<td class="text">{text}</td>' if column in TEXT else f"<td>{text}</td>"


def data_quality_html(in_csv: str | os.PathLike, out_html: str | os.PathLike) -> str:
    """Render the data-quality CSV as a standalone HTML page for the report (styled as the paper tables)."""
    df = pd.read_csv(in_csv, keep_default_na=False, dtype=str)
    shown = [c for c in COLUMNS if c != "record"]
    lines = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Data quality</title>",
             f"<style>{STYLE}\ntd.text{{text-align:left}}tr.damaged td:nth-child(5){{font-weight:bold}}</style>",
             "</head><body><table><thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in shown)
             + "</tr></thead><tbody>"]
    for row in df.itertuples(index=False):
        values = row._asdict()
        mark = ' class="damaged"' if values["damaged"] not in (NA, "0") else ""
        lines.append(f'<tr{mark} title="{escape(values["record"])}">' + "".join(_cell(c, values[c]) for c in shown)
                     + "</tr>")
    lines += ["</tbody></table>",
              "<p>samples: distinct samples the stage expected; damaged: those it could not use, each counted once "
              "by (shard, key); share = damaged / samples; first_keys: up to five of them as shard:key. n/a: the "
              "record was written without these counts. The file each row reads is in the CSV's record column "
              "(and the row's tooltip).</p>", "</body></html>", ""]
    text = "\n".join(lines)
    write_text(out_html, text)
    return text


def build_data_quality(out_csv: str | os.PathLike, out_html: str | os.PathLike | None = None, *,
                       downloads: Iterable[str | os.PathLike] = (), subsets: Iterable[str | os.PathLike] = (),
                       runs: Iterable[str | os.PathLike] = (),
                       features: Iterable[str | os.PathLike] = ()) -> pd.DataFrame:
    """Write the data-quality table of the given records to ``out_csv`` (and ``out_html``), atomically,
    and log one line per stage with its totals. Returns the table."""
    rows = data_quality_rows(downloads, subsets, runs, features)
    for line in stage_summaries(rows):
        _log.info(line)
    df = pd.DataFrame([{c: r[c] for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    write_text(out_csv, df.to_csv(index=False))
    if out_html is not None:
        data_quality_html(out_csv, out_html)
    return df
