"""Damaged shards: a cut at any byte offset costs exactly the lost keys, counted once; key order."""

from __future__ import annotations

import io
import random
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from aloe.data.align_loader import AlignmentLoader
from aloe.data.shard_index import read_index, write_index
from aloe.data.shards import encode_png, write_split
from aloe.data.subsets import materialize_subset
from aloe.data.tario import SkipCounter, iter_shard

N = 12


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """One real shard of the common format (12 samples: .cls then .png members) and its index."""
    root = tmp_path_factory.mktemp("damage")
    samples = ({"png": encode_png(np.full((10, 10, 3), 20 * i, np.uint8)), "cls": str(i % 4).encode()}
               for i in range(N))
    write_split(root, "train", samples, samples_per_shard=100)
    path = root / "train" / "000000.tar"
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    return path, members


def cut_copy(shard, tmp_path: Path, nbytes: int) -> Path:
    path, _ = shard
    out = tmp_path / "cut" / path.name
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(path.read_bytes()[:nbytes])
    shutil.copy(path.with_suffix(".parquet"), out.with_suffix(".parquet"))
    return out


def read(path: Path, **kw):
    counter = SkipCounter()
    keys = [s["__key__"] for s in iter_shard(path, counter, require=("cls",), **kw)]
    return keys, counter


def key(i: int) -> str:
    return f"train_{i:08d}"


@pytest.mark.parametrize("where,lost_as", [
    ("boundary", {}),  # cut exactly before sample 5's first header: tarfile itself sees a complete archive
    ("first_header", {}),  # inside sample 5's first header
    ("first_data", {5: "incomplete_sample"}),  # inside sample 5's .cls data
    ("between", {5: "incomplete_sample"}),  # after sample 5's .cls, before its .png: a member boundary
    ("second_data", {5: "incomplete_sample"}),  # inside sample 5's .png data
])
def test_a_cut_loses_exactly_the_keys_after_it(shard, tmp_path, where, lost_as):
    _, members = shard
    cls, png = members[f"{key(5)}.cls"], members[f"{key(5)}.png"]
    offset = {"boundary": cls.offset, "first_header": cls.offset + 100, "first_data": cls.offset_data,
              "between": png.offset, "second_data": png.offset_data + png.size // 2}[where]
    keys, counter = read(cut_copy(shard, tmp_path, offset))
    assert keys == [key(i) for i in range(5)]
    expected = {("000000.tar", key(i)): lost_as.get(i, "missing_sample") for i in range(5, N)}
    assert counter.samples == expected
    assert counter.total == N - 5 and counter.n_samples == N
    assert counter.notes == {"000000.tar": {"truncated_tar"}}


def test_cuts_that_lose_nothing_or_everything(shard, tmp_path):
    path, members = shard
    last = members[f"{key(N - 1)}.png"]
    keys, counter = read(cut_copy(shard, tmp_path, last.offset_data + last.size + 600))  # inside the end marker
    assert len(keys) == N and counter.total == 0 and counter.notes == {"000000.tar": {"truncated_tar"}}
    keys, counter = read(cut_copy(shard, tmp_path, 0))  # an empty file
    assert keys == [] and counter.as_dict()["by_reason"] == {"unreadable_shard": N}
    keys, counter = read(path)
    assert len(keys) == N and counter.total == 0 and counter.notes == {}


def test_counts_are_restricted_to_the_split_and_name_missing_index(shard, tmp_path):
    _, members = shard
    cut = cut_copy(shard, tmp_path, members[f"{key(8)}.cls"].offset)
    keys, counter = read(cut, keys={key(1), key(9), key(10)})  # a split holding 1 intact and 2 lost samples
    assert keys == [key(1)] and counter.as_dict()["by_reason"] == {"missing_sample": 2} and counter.n_samples == 3
    assert counter.as_dict()["first_keys"] == [["000000.tar", key(9), "missing_sample"],
                                               ["000000.tar", key(10), "missing_sample"]]
    assert counter.as_dict(first=1)["first_keys"] == [["000000.tar", key(9), "missing_sample"]]
    cut.with_suffix(".parquet").unlink()  # without its index the loss cannot be counted, and the record says so
    keys, counter = read(cut)
    assert len(keys) == 8 and counter.total == 0
    assert counter.notes == {"000000.tar": {"no_index", "truncated_tar"}}


def test_loaders_count_each_lost_sample_once_across_epochs_and_workers(shard, tmp_path):
    _, members = shard
    cut = cut_copy(shard, tmp_path, members[f"{key(7)}.png"].offset_data + 3)
    loader = AlignmentLoader([str(cut)], image_size=8, batch_size=2, seed=0, num_workers=2, shuffle_buffer=4)
    for epoch in range(3):
        assert sorted(k for b in loader.iterate(epoch) for k in b.keys) == [key(i) for i in range(7)]
    assert loader.skipped.total == N - 7 and loader.skipped.share == pytest.approx((N - 7) / N)
    summary = materialize_subset([str(cut)], _keys_file(tmp_path, [key(2), key(7), key(11)]), tmp_path / "sub",
                                 samples_per_shard=10)
    assert summary["written"] == 1 and summary["skipped"]["by_reason"] == {"incomplete_sample": 1, "missing_sample": 1}
    assert summary["skipped"]["first_keys"] == [["000000.tar", key(7), "incomplete_sample"],
                                                ["000000.tar", key(11), "missing_sample"]]
    assert read_index(tmp_path / "sub" / "000000.tar") == [key(2)]


def _keys_file(tmp_path: Path, keys: list[str]) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text("".join(f"{k}\n" for k in keys))
    return path


def _shuffled_copy(shard, out: Path, seed: int) -> Path:
    """The same samples (same bytes per key) stored in another order, as img2dataset's threads do."""
    path, members = shard
    names = sorted({n.split(".")[0] for n in members})
    random.Random(seed).shuffle(names)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path) as src, tarfile.open(out / path.name, "w") as dst:
        for k in names:
            for ext in ("cls", "png"):
                info = src.getmember(f"{k}.{ext}")
                dst.addfile(info, io.BytesIO(src.extractfile(info).read()))
    write_index(out / path.name, names)
    return out / path.name


def test_read_order_is_the_key_order_whatever_the_stored_order(shard, tmp_path):
    a, b = _shuffled_copy(shard, tmp_path / "a", 1), _shuffled_copy(shard, tmp_path / "b", 2)
    assert a.read_bytes() != b.read_bytes()
    assert read(a)[0] == read(b)[0] == [key(i) for i in range(N)]
    batches = []
    for path in (a, b):
        loader = AlignmentLoader([str(path)], image_size=8, batch_size=3, seed=5, num_workers=2, shuffle_buffer=6)
        batches.append([(bt.keys, bt.pixels) for bt in loader.iterate(0)])
    assert [k for k, _ in batches[0]] == [k for k, _ in batches[1]]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(*batches))
    for name, path in (("a", a), ("b", b)):
        materialize_subset([str(path)], _keys_file(tmp_path, [key(i) for i in range(0, N, 2)]),
                           tmp_path / f"sub_{name}", samples_per_shard=4)
    for tar in ("000000.tar", "000001.tar"):
        assert (tmp_path / "sub_a" / tar).read_bytes() == (tmp_path / "sub_b" / tar).read_bytes()
