"""The data-quality table: every damaged sample of every stage, counted from the stages' own records.

The records are made by the stages' own code over damaged data: img2dataset's per-shard stats and
parquet files aggregated by ``summarize_shards``, a subset materialised from a truncated shard, a
run's ``damaged_samples`` counted by the shard reader the training stream uses, and feature caches
written by the feature stage (a tiny random teacher) over a dataset with a truncated test shard.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aloe.data.img2dataset_stage import summarize_shards
from aloe.data.shards import encode_png, write_meta, write_split
from aloe.data.subsets import materialize_subset
from aloe.data.tario import SkipCounter, iter_shard
from aloe.eval.features import make_provenance, save_features
from aloe.eval.stages import run_extract_train_test
from aloe.io import read_json, write_json
from aloe.pipeline import run_stage
from aloe.tables.data_quality import COLUMNS, build_data_quality

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from eval_helpers import save_tiny_teacher

NOT_FOUND, NOT_IMAGE = "HTTP Error 404: File not found", "cannot identify image file"


def key(i: int, split: str = "train") -> str:
    return f"{split}_{i:08d}"


def samples(n: int):
    return ({"png": encode_png(np.full((10, 10, 3), 20 * i, np.uint8)), "cls": str(i % 4).encode()} for i in range(n))


def cut_before(shard: Path, out: Path, first_lost: str) -> Path:
    """A copy of ``shard`` and its index, cut right before sample ``first_lost``: it loses that key and the rest."""
    with tarfile.open(shard) as tar:
        offset = min(m.offset for m in tar.getmembers() if m.name.split(".")[0] == first_lost)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(shard.read_bytes()[:offset])
    shutil.copy(shard.with_suffix(".parquet"), out.with_suffix(".parquet"))
    return out


def img2dataset_shard(folder: Path, shard: int, failures: dict[int, str], n: int = 16) -> None:
    """What img2dataset leaves for one shard: ``NNNNN_stats.json`` and the parquet listing every URL."""
    keys = [f"{shard:05d}{i:04d}" for i in range(n)]
    errors = [failures.get(i) for i in range(n)]
    status = ["success" if e is None else "failed_to_download" if e == NOT_FOUND else "failed_to_resize"
              for e in errors]
    pd.DataFrame({"url": [f"http://x/{k}.jpg" for k in keys], "key": keys, "status": status,
                  "error_message": errors}).to_parquet(folder / f"{shard:05d}.parquet")
    status_dict = {"success": status.count("success"), **{e: errors.count(e) for e in set(failures.values())}}
    write_json(folder / f"{shard:05d}_stats.json", {
        "count": n, "successes": status.count("success"), "failed_to_download": status.count("failed_to_download"),
        "failed_to_resize": status.count("failed_to_resize"), "status_dict": status_dict})


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Record files of every stage, laid out as the workflow writes them; returns (root, files per stage)."""
    root = tmp_path_factory.mktemp("dq")
    res = root / "results"
    # download: 3 of 32 URLs failed (two in shard 00000, one in 00001)
    web = res / "alignment_sets/web/shards"
    web.mkdir(parents=True)
    img2dataset_shard(web, 0, {3: NOT_FOUND, 7: NOT_IMAGE})
    img2dataset_shard(web, 1, {12: NOT_FOUND})
    write_json(web / "summary.json", summarize_shards(web, expected_shards=2))
    # the alignment shard: 12 samples, cut before sample 5 (7 lost)
    write_split(root / "src", "train", samples(12), samples_per_shard=100)
    intact = root / "src/train/000000.tar"
    cut = cut_before(intact, res / "alignment_sets/synth/shards/000000.tar", key(5))
    # subset: 4 listed keys, 2 lost in the cut, 1 in no shard
    keys_file = root / "val.txt"
    keys_file.write_text("".join(f"{k}\n" for k in (key(2), key(7), key(11), key(99))))
    materialize_subset([str(cut)], keys_file, res / "alignment_sets/synth/subset_val", samples_per_shard=10)
    # training run: the run's own counts of both splits, as aloe.align.train writes them (AlignJob adds run_dir)
    train, heldout = SkipCounter(), SkipCounter()
    list(iter_shard(cut, train))
    list(iter_shard(intact, heldout, keys={key(0), key(1), key(2)}))
    run = res / "align/demo_vit/main/lr0.001/result.json"
    run.parent.mkdir(parents=True)
    write_json(run, {"step": 4, "stopped_early": False, "best_heldout": 0.5, "run_dir": "runs/x",
                     "damaged_samples": {"train": train.as_dict(), "heldout": heldout.as_dict()}})
    old_run = res / "align/demo_vit/bcosification/result.json"
    old_run.parent.mkdir(parents=True)
    write_json(old_run, {"step": 4, "stopped_early": False, "best_heldout": None, "run_dir": "runs/y"})
    # features: the feature stage over a dataset whose test shard lost 3 of its 6 samples
    data = root / "shapes"
    splits = {s: write_split(data, s, samples(n), samples_per_shard=100) for s, n in (("train", 8), ("test", 6))}
    shutil.copytree(data / "test", root / "test_intact")
    cut_before(root / "test_intact/000000.tar", data / "test/000000.tar", key(3, "test"))
    write_meta(data, name="shapes", task="classification", splits=splits, class_names=["a", "b", "c", "d"])
    feats = res / "features/demo_vit/teacher/shapes"
    run_extract_train_test(str(feats / "train.safetensors"), str(feats / "test.safetensors"),
                           backbone_path=str(save_tiny_teacher(root / "teacher", "vit")), backbone_kind="teacher",
                           dataset_dir=str(data), dataset="shapes", batch_size=4, device="cpu")
    old_cache = res / "features/demo_vit/aloe/shapes/test.safetensors"
    old_cache.parent.mkdir(parents=True)
    save_features(old_cache, {"x": torch.zeros(2, 3)}, make_provenance(
        backbone_checksum="0", dataset="shapes", split="test", preprocessing={}, spec={}))
    files = dict(downloads=[web / "summary.json"], subsets=[res / "alignment_sets/synth/subset_val/subset.json"],
                 runs=[run, old_run],
                 features=[feats / "train.safetensors", feats / "test.safetensors", old_cache])
    return root, {k: [str(p) for p in v] for k, v in files.items()}


def na(stage, item, split, why, record):
    return dict({c: "n/a" for c in COLUMNS}, stage=stage, item=item, split=split, notes=why, record=record)


def test_every_damaged_sample_is_counted_in_the_table_and_the_rule_log(records, tmp_path):
    root, files = records
    out_csv, out_html, log = tmp_path / "data_quality.csv", tmp_path / "data_quality.html", tmp_path / "dq.log"
    run_stage("aloe.tables.stages:run_data_quality", dict(out_csv=str(out_csv), out_html=str(out_html),
              **files), log=str(log))  # as the rule calls it
    df = pd.read_csv(out_csv, keep_default_na=False, dtype=str)
    assert list(df.columns) == list(COLUMNS)
    truncated = "000000.tar: truncated_tar"
    expected = [
        dict(stage="download", item="web", split="all", samples="32", damaged="3", share=str(3 / 32),
             reasons=f"{NOT_FOUND}: 2; {NOT_IMAGE}: 1", shards_affected="2",
             first_keys="00000.tar:000000003; 00000.tar:000000007; 00001.tar:000010012", notes="",
             record=files["downloads"][0]),
        dict(stage="subset", item="synth/subset_val", split="all", samples="4", damaged="3", share="0.75",
             reasons="missing_sample: 2; not_in_shards: 1", shards_affected="1",
             first_keys=f"000000.tar:{key(7)}; 000000.tar:{key(11)}; (no shard):{key(99)}", notes=truncated,
             record=files["subsets"][0]),
        dict(stage="train", item="demo_vit/main/lr0.001", split="train", samples="12", damaged="7",
             share=str(7 / 12), reasons="missing_sample: 7", shards_affected="1",
             first_keys="; ".join(f"000000.tar:{key(i)}" for i in range(5, 10)), notes=truncated,
             record=files["runs"][0]),
        dict(stage="train", item="demo_vit/main/lr0.001", split="heldout", samples="3", damaged="0", share="0.0",
             reasons="", shards_affected="0", first_keys="", notes="", record=files["runs"][0]),
        na("train", "demo_vit/bcosification", "all", "the run's record holds no damaged-sample counts",
           files["runs"][1]),
        dict(stage="features", item="demo_vit/teacher/shapes", split="train", samples="8", damaged="0", share="0.0",
             reasons="", shards_affected="0", first_keys="", notes="", record=files["features"][0]),
        dict(stage="features", item="demo_vit/teacher/shapes", split="test", samples="6", damaged="3", share="0.5",
             reasons="missing_sample: 3", shards_affected="1",
             first_keys="; ".join(f"000000.tar:{key(i, 'test')}" for i in range(3, 6)), notes=truncated,
             record=files["features"][1]),
        na("features", "demo_vit/aloe/shapes", "test", "the cache's header holds no counts of skipped samples",
           files["features"][2]),
    ]
    assert df.to_dict("records") == expected
    # the rule log: one line per stage with its totals
    text = log.read_text()
    for line in [
        f"download: 1 record(s), 1 row(s) with counts: 3 of 32 samples damaged (9.38 %); {NOT_FOUND}: 2; "
        f"{NOT_IMAGE}: 1",
        "subset: 1 record(s), 1 row(s) with counts: 3 of 4 samples damaged (75.00 %); missing_sample: 2; "
        "not_in_shards: 1",
        "train: 2 record(s), 2 row(s) with counts: 7 of 15 samples damaged (46.67 %); missing_sample: 7; "
        "1 row(s) n/a (record without counts)",
        "features: 3 record(s), 2 row(s) with counts: 3 of 14 samples damaged (21.43 %); missing_sample: 3; "
        "1 row(s) n/a (record without counts)",
    ]:
        assert line in text, line
    # the HTML page shows the same rows (without the record column), shares in percent, n/a marked
    cells = HtmlRows()
    cells.feed(out_html.read_text())
    assert cells.header == [c for c in COLUMNS if c != "record"]
    assert [r[:2] for r in cells.rows] == [[r["stage"], r["item"]] for r in expected]
    assert [r[5] for r in cells.rows] == ["9.38 %", "75.00 %", "58.33 %", "0.00 %", "n/a", "0.00 %", "50.00 %", "n/a"]
    assert [r[4] for r in cells.rows] == [r["damaged"] for r in expected]
    assert cells.na == 2 * 6  # the two n/a rows: every count column


def test_older_records_without_keys_or_counts_give_na_not_an_error(records, tmp_path):
    _, files = records
    summary = read_json(files["downloads"][0])
    for k in ("failures_by_shard", "failed_first"):  # a summary written before failures were kept by shard
        summary.pop(k)
    old_summary = tmp_path / "results/alignment_sets/web/shards/summary.json"
    old_summary.parent.mkdir(parents=True)
    write_json(old_summary, summary)
    subset = read_json(files["subsets"][0])
    subset.pop("skipped")
    old_subset = tmp_path / "results/alignment_sets/synth/subset_0.1/subset.json"
    old_subset.parent.mkdir(parents=True)
    write_json(old_subset, subset)
    run = read_json(files["runs"][0])
    for split in ("train", "heldout"):
        run["damaged_samples"][split].pop("first_keys")  # as SkipCounter.as_dict wrote it before it named keys
    old_run = tmp_path / "results/align/demo_vit/main/lr0.01/result.json"
    old_run.parent.mkdir(parents=True)
    write_json(old_run, run)
    df = build_data_quality(tmp_path / "dq.csv", downloads=[old_summary], subsets=[old_subset], runs=[old_run])
    assert not (tmp_path / "dq.html").exists()
    rows = df.set_index(["stage", "split"])
    assert rows.loc[("download", "all"), ["samples", "damaged", "shards_affected", "first_keys"]].tolist() == [
        32, 3, "n/a", "n/a"]
    assert rows.loc[("download", "all"), "notes"] == "summary written before failures were kept by shard and key"
    assert rows.loc[("subset", "all"), ["item", "samples", "damaged", "notes"]].tolist() == [
        "synth/subset_0.1", "n/a", "n/a", "the record holds no counts of skipped samples"]
    # counts without keys: the numbers are kept, the keys are n/a where there are damaged ones
    assert rows.loc[("train", "train"), ["samples", "damaged", "first_keys"]].tolist() == [12, 7, "n/a"]
    assert rows.loc[("train", "heldout"), ["samples", "damaged", "first_keys"]].tolist() == [3, 0, ""]


class HtmlRows(HTMLParser):
    """Header and body cell texts of the data-quality page, and the number of n/a cells."""

    def __init__(self):
        super().__init__()
        self.header, self.rows, self.na, self._cell, self._in_head = [], [], 0, None, False

    def handle_starttag(self, tag, attrs):
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""
            self.na += ("class", "na") in attrs

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            (self.header if self._in_head else self.rows[-1]).append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
