"""The training stream (the one loader, epoch after epoch): resume, rank split, labels, damage,
held-out batches, bad shard lists."""

import itertools
import tarfile

import pytest
import torch
from align_helpers import write_shards

from aloe.align.loader_stream import LoaderStream
from aloe.data.heldout import heldout_batches
from aloe.data.tario import resolve_shards


def _stream(shards, **kw):
    args = dict(rank=0, world_size=1, seed=3, batch_size=5, image_size=32, shuffle_buffer=8)
    args.update(kw)
    return LoaderStream(shards, **args)


def test_resume_from_position_continues_identically(shards):
    full = _stream(shards["train"])
    it = iter(full)
    first = [next(it) for _ in range(4)]
    pos = full.state_dict()
    rest = [next(it) for _ in range(30)]  # crosses into the next epoch (96 samples / 5: 19 full batches)
    assert full.state_dict()["epoch"] == 1 and full.dropped_remainder == 1
    for workers in (0, 2):
        again = list(itertools.islice(iter(_stream(shards["train"], resume_state=pos, num_workers=workers)), 30))
        assert len(again) == 30 and all(torch.equal(a.pixels, b.pixels) for a, b in zip(rest, again))
        assert [a.keys for a in rest] == [b.keys for b in again]
    assert first[0].pixels.shape == (5, 3, 32, 32) and first[0].labels is None
    assert 0.0 <= first[0].pixels.min() and first[0].pixels.max() <= 1.0
    # a new epoch re-draws the order and the crops of the same samples
    assert not torch.equal(rest[-1].pixels, first[0].pixels)


def test_ranks_split_shards_without_duplicates(shards):
    seen = {}
    for rank in range(2):
        s = _stream(shards["train"], rank=rank, world_size=2)
        seen[rank] = {k for b in itertools.islice(iter(s), 9) for k in b.keys}  # 9 x 5 of each rank's 48
    assert seen[0].isdisjoint(seen[1])
    assert {k.split("_")[0] for k in seen[0]}.isdisjoint({k.split("_")[0] for k in seen[1]})  # whole shards
    with pytest.raises(ValueError, match="5 ranks: every rank needs at least one shard"):
        _stream(shards["train"], world_size=5)


def test_corrupt_samples_are_skipped_and_counted_once(tmp_path):
    paths = write_shards(tmp_path, n_shards=1, per_shard=20, corrupt_every=4)
    s = _stream(paths, batch_size=3)
    it = iter(s)
    batches = list(itertools.islice(it, 5))  # the 15 good samples of the epoch
    assert sum(b.pixels.shape[0] for b in batches) == 15 and len({k for b in batches for k in b.keys}) == 15
    list(itertools.islice(it, 10))  # two more epochs: the same 5 damaged samples, counted once
    assert (s.stats.total, s.stats.n_samples) == (5, 20) and s.epoch == 2
    assert s.stats.as_dict()["by_shard"] == {"train-00000.tar": {"corrupt_image": 5}}


def test_truncated_tar_is_counted_by_key(tmp_path):
    (path,) = write_shards(tmp_path, n_shards=1, per_shard=12)
    data = open(path, "rb").read()
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    cut = len(data) // 2
    intact = {m.name.split(".")[0] for m in members} - {m.name.split(".")[0] for m in members
                                                          if m.offset_data + m.size > cut}
    open(path, "wb").write(data[:cut])
    s = _stream([path], batch_size=1)
    got = list(itertools.islice(iter(s), len(intact)))
    assert {k for b in got for k in b.keys} == intact and s.stats.total == 12 - len(intact) > 0
    assert s.stats.notes == {"train-00000.tar": {"truncated_tar"}}
    assert set(s.stats.as_dict()["by_reason"]) <= {"missing_sample", "incomplete_sample"}


def test_labels_and_heldout_split(shards, tmp_path):
    s = _stream(shards["train"], label_key="cls")
    b = next(iter(s))
    assert b.labels.dtype == torch.int64 and b.labels.shape == (5,) and set(b.labels.tolist()) <= {0, 1, 2, 3}
    # the labels belong to their samples: the same key has the same label in every epoch and worker layout
    labels = {k: int(y) for batch in itertools.islice(iter(_stream(shards["train"], label_key="cls",
                                                                   num_workers=2)), 40)
              for k, y in zip(batch.keys, batch.labels)}
    assert len(labels) >= 95 and all(labels[k] == int(y) for k, y in zip(b.keys, b.labels))
    n = [sum(x.pixels.shape[0] for x in heldout_batches(shards["heldout"], rank=r, world_size=2, batch_size=4,
                                                          image_size=32)) for r in range(2)]
    assert n == [16, 16]
    capped = list(heldout_batches(shards["heldout"], rank=0, world_size=1, batch_size=4, image_size=32,
                                  max_samples=10, label_key="cls"))
    assert sum(x.pixels.shape[0] for x in capped) == 10 and capped[0].pixels.shape == (4, 3, 32, 32)
    assert capped[0].labels.dtype == torch.int64 and capped[0].pixels.dtype == torch.float32
    # without a label member a supervised sample is damaged, not labelled 0
    unlabelled = write_shards(tmp_path, n_shards=1, per_shard=6, with_labels=False)
    s = _stream(unlabelled, label_key="cls", batch_size=2)
    with pytest.raises(RuntimeError, match="yielded no samples"):
        next(iter(s))
    assert s.stats.as_dict()["by_reason"] == {"missing_cls": 6}


def test_bad_shard_lists_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="'shards': the shard list is empty"):
        resolve_shards([])
    with pytest.raises(FileNotFoundError, match="missing-00000.tar"):
        resolve_shards([str(tmp_path / "missing-{00000..00001}.tar")])
    with pytest.raises(ValueError, match="'heldout_shards': shard https://host/x.tar is not a local file"):
        resolve_shards(["https://host/x.tar"], "heldout_shards")
    with pytest.raises(FileNotFoundError, match="'shards': no \\*.tar shards in"):
        resolve_shards(str(tmp_path))


def test_brace_patterns_and_folders_name_the_same_shards(shards):
    folder = str(__import__("pathlib").Path(shards["train"][0]).parent)
    pattern = shards["train"][0].replace("00000.tar", "{00000..00001}.tar")
    assert resolve_shards(pattern) == sorted(shards["train"])[:2]
    assert [t for t in resolve_shards(folder) if "train" in t] == sorted(shards["train"])


def test_keys_file_restricts_samples(shards, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("heldout000_000001\nheldout000_000005\nheldout000_000007\n")
    got = [k for b in heldout_batches(shards["heldout"], rank=0, world_size=1, batch_size=2, image_size=32,
                                      keys_file=str(keys)) for k in b.keys]
    assert got == ["heldout000_000001", "heldout000_000005", "heldout000_000007"]


def test_fewer_samples_than_a_batch_fails_instead_of_waiting_forever(tmp_path):
    """A tiny subset (e.g. 0.1 % of a small set) drops its only, partial batch every epoch."""
    few = write_shards(tmp_path, n_shards=1, per_shard=3)
    stream = LoaderStream(few, rank=0, world_size=1, seed=0, batch_size=8, image_size=32, shuffle_buffer=8)
    with pytest.raises(RuntimeError, match=r"fewer samples than one micro-batch \(8; 3 dropped\)"):
        next(iter(stream))
