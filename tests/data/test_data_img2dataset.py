"""img2dataset over the loopback server: exact failure accounting, success gate, resume."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tarfile

import pandas as pd
import pytest

from aloe.data.img2dataset_output import OutputForwarder
from aloe.data.img2dataset_stage import SuccessRateError, download_alignment_set, read_url_list_columns
from aloe.data.synthetic_world import download_synthetic_alignment_set
from aloe.data.tario import SkipCounter, iter_shard
from aloe.joblog import log_to

OPTIONS = dict(image_size=32, processes=1, threads=4, samples_per_shard=16, retries=0, timeout=5)


def test_download_counts_gate_and_resume(tiny_world, tmp_path):
    manifest = pd.read_parquet(tiny_world / "caption_set" / "manifest.parquet")
    kinds = manifest["kind"].value_counts().to_dict()
    assert kinds == {"ok": 40, "missing": 1, "not_image": 1, "empty": 1}
    out = tmp_path / "align"

    # 1. Gate above the achieved rate (40/43 = 93 %): the stage fails and says why.
    with pytest.raises(SuccessRateError, match="min_success_rate=99.0%"):
        download_synthetic_alignment_set(tiny_world, out, min_success_rate=0.99, **OPTIONS)
    assert not (out / "summary.json").exists()
    failed = json.loads((out / "summary.failed.json").read_text())
    assert failed["count"] == 43
    assert failed["successes"] == 40
    assert failed["failed_to_download"] == 1  # the 404
    assert failed["failed_to_resize"] == 2  # non-image bytes + empty file
    assert sum(failed["failures_by_reason"].values()) == 3
    assert failed["failures_by_reason"]["HTTP Error 404: File not found"] == 1
    assert failed["shards"] == ["00000.tar", "00001.tar", "00002.tar"]
    # ... and names the failed samples by shard and key: their URLs are the broken manifest entries
    assert sum(failed["failures_by_shard"].values()) == 3 and len(failed["failed_first"]) == 3
    assert failed["failed_first"] == sorted(failed["failed_first"])
    urls = pd.concat([pd.read_parquet(out / n.replace(".tar", ".parquet")).assign(shard=n) for n in failed["shards"]])
    urls = urls.set_index(["shard", "key"])["url"]
    kind = dict(zip(manifest["path"], manifest["kind"]))
    assert sorted(kind[urls[(s, k)].split("/", 3)[3]] for s, k, _ in failed["failed_first"]) == [
        "empty", "missing", "not_image"]
    assert {s for s, _, _ in failed["failed_first"]} == set(failed["failures_by_shard"])
    assert sorted(m for _, _, m in failed["failed_first"]) == sorted(
        m for m, n in failed["failures_by_reason"].items() for _ in range(n))

    # 2. Simulated crash inside shard 1: no stats file, half-written tar.
    before = {n: ((out / n).read_bytes(), (out / n).stat().st_mtime_ns) for n in ("00000.tar", "00002.tar")}
    (out / "00001_stats.json").unlink()
    tar1 = out / "00001.tar"
    tar1.write_bytes(tar1.read_bytes()[: tar1.stat().st_size // 2])

    with log_to(tmp_path / "rule.log"):
        summary = download_synthetic_alignment_set(tiny_world, out, min_success_rate=0.5, **OPTIONS)
    # img2dataset's own messages and statistics reach the stage's log as plain lines, its shard counter
    # as progress out of the 3 shards
    text = (tmp_path / "rule.log").read_bytes().decode()  # read_text() would turn "\r" into "\n"
    assert "\r" not in text and "it/s]" not in text and b"\r" in (out / "img2dataset.log").read_bytes()
    assert re.search(r"^\S+ \S+ INFO img2dataset: total +- success: [\d.]+ - failed to download", text, flags=re.M)
    assert re.search(r"^\S+ \S+ INFO aloe\.progress: img2dataset: [1-3]/3 shards \(\d+ %\)", text, flags=re.M)
    for name, (data, mtime) in before.items():  # finished shards were not redone
        assert (out / name).read_bytes() == data and (out / name).stat().st_mtime_ns == mtime
    assert (summary["count"], summary["successes"]) == (43, 40)
    assert (summary["failed_to_download"], summary["failed_to_resize"]) == (1, 2)
    assert json.loads((out / "summary.json").read_text()) == summary

    # 3. The shards hold exactly the 40 good images, each with its caption.
    counter = SkipCounter()
    samples = [s for n in summary["shards"] for s in iter_shard(out / n, counter)]
    assert counter.total == 0
    captions = sorted(s["txt"].decode() for s in samples)
    assert captions == sorted(manifest.loc[manifest["kind"] == "ok", "caption"])
    assert all(s["jpg"][:2] == b"\xff\xd8" for s in samples)
    assert [s["__key__"] for s in samples] == sorted(s["__key__"] for s in samples)  # key order, not stored order

    # 4. A real img2dataset shard cut at a member boundary: its own parquet counts every lost key.
    shard = out / summary["shards"][0]
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    stored = list(dict.fromkeys(m.name.split(".")[0] for m in members))  # download order
    first = next(m for m in members if m.name.startswith(stored[5] + "."))
    shutil.copy(shard.with_suffix(".parquet"), tmp_path / "cut.parquet")
    (tmp_path / "cut.tar").write_bytes(shard.read_bytes()[: first.offset])
    counter = SkipCounter()
    kept = [s["__key__"] for s in iter_shard(tmp_path / "cut.tar", counter)]
    assert kept == sorted(stored[:5])
    assert sorted(k for _, k in counter.samples) == sorted(stored[5:])
    assert set(counter.samples.values()) == {"missing_sample"} and counter.notes == {"cut.tar": {"truncated_tar"}}


def test_bad_url_list_fails_before_download(tmp_path):
    urls = tmp_path / "urls.parquet"
    pd.DataFrame({"link": ["http://127.0.0.1:9/x.jpg"], "caption": ["x"]}).to_parquet(urls)
    with pytest.raises(ValueError, match="no column 'url' \\(url_col\\)"):
        download_alignment_set(urls, tmp_path / "out", min_success_rate=0.5, **OPTIONS)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="config key: url_list"):
        download_alignment_set(tmp_path / "nope.parquet", tmp_path / "out", **OPTIONS)
    sheet = tmp_path / "urls.xlsx"
    sheet.write_bytes(b"")
    with pytest.raises(ValueError, match="unknown format"):
        download_alignment_set(sheet, tmp_path / "out", **OPTIONS)


def test_url_list_formats_are_counted_like_img2dataset(tmp_path):
    tsv = tmp_path / "u.tsv"
    tsv.write_text("url\tcaption\nhttp://a/1.jpg\ta, b\nhttp://a/2.jpg\tc\n")
    assert read_url_list_columns(tsv, "tsv") == (["url", "caption"], 2)
    txt = tmp_path / "u.txt"
    txt.write_text("http://a/1.jpg\nhttp://a/2.jpg\nhttp://a/3.jpg\n")
    assert read_url_list_columns(txt, "txt") == (["url"], 3)


def test_img2dataset_output_becomes_plain_lines_and_shard_progress(caplog):
    """Its bytes as they come (a tqdm counter redrawn with carriage returns, text glued behind it),
    cut at arbitrary places."""
    stream = (b"Starting the downloading of this file\n\r0it [00:00, ?it/s]Sharding file number 1 of 1\n"
              b"File sharded in 4 shards\n\r1it [00:10, 10.34s/it]\r2it [00:12,  5.51s/it]worker  - success: 0.998 - "
              b"count: 500\ntotal   - success: 0.998 - count: 1000\n\r3it [00:14,  3.93s/it]\r4it [00:16,  3.11s/it]\n"
              b"caf\xc3\xa9 done")
    forward = OutputForwarder(shards=4)
    with caplog.at_level(logging.INFO):
        for i in range(0, len(stream), 7):
            forward.feed(stream[i : i + 7])
        forward.close()
    assert [r.getMessage() for r in caplog.records if r.name == "img2dataset"] == [
        "Starting the downloading of this file", "Sharding file number 1 of 1", "File sharded in 4 shards",
        "worker  - success: 0.998 - count: 500", "total   - success: 0.998 - count: 1000", "caf\u00e9 done"]
    progress = [r.getMessage() for r in caplog.records if r.name == "aloe.progress"]
    assert [m.split(",")[0] for m in progress] == [f"img2dataset: {n}/4 shards ({25 * n} %)" for n in (1, 2, 3, 4)]
