"""The resumable shard stream: positions, rank split, corrupt samples, bad shard lists."""

import itertools
import tarfile

import pytest
import torch
from align_helpers import write_shards

from aloe.align.stream import ShardStream, expand_shards, heldout_batches


def _stream(shards, **kw):
    args = dict(rank=0, world_size=1, seed=3, batch_size=5, image_size=32)
    args.update(kw)
    return ShardStream(shards, **args)


def test_resume_from_position_continues_identically(shards):
    full = _stream(shards["train"])
    it = iter(full)
    first = [next(it) for _ in range(4)]
    pos = full.state_dict()
    rest = [next(it) for _ in range(30)]  # crosses into the next epoch (96 samples / 5)
    assert full.state_dict()["epoch"] == 1
    resumed = _stream(shards["train"], resume_state=pos)
    again = list(itertools.islice(iter(resumed), 30))
    for a, b in zip(rest, again):
        assert torch.equal(a.pixels, b.pixels)
    assert first[0].pixels.shape == (5, 3, 32, 32)
    assert 0.0 <= first[0].pixels.min() and first[0].pixels.max() <= 1.0
    # a new epoch re-draws the crops of the same samples
    assert not torch.equal(rest[-1].pixels, first[0].pixels)


def test_ranks_split_shards_without_duplicates(shards):
    keys = {}
    for rank in range(2):
        s = _stream(shards["train"], rank=rank, world_size=2)
        keys[rank] = set(s.rank_shards(0))
    assert keys[0].isdisjoint(keys[1])
    assert keys[0] | keys[1] == set(shards["train"])
    with pytest.raises(ValueError, match="cannot be split over 5 ranks"):
        _stream(shards["train"], world_size=5)


def test_corrupt_samples_are_skipped_and_counted(tmp_path):
    paths = write_shards(tmp_path, n_shards=1, per_shard=20, corrupt_every=4)
    s = _stream(paths, batch_size=3)
    batches = list(itertools.islice(iter(s), 5))  # the 15 good samples of the epoch
    assert sum(b.pixels.shape[0] for b in batches) == 15
    # the 15th good sample is sample 19; the 20th (corrupt) has not been read yet
    assert (s.stats.total, s.stats.n_samples, s.state_dict()) == (4, 20, {"epoch": 0, "index": 19})
    assert s.stats.as_dict()["by_shard"] == {"train-00000.tar": {"corrupt_sample": 4}}
    list(itertools.islice(iter(s), 10))  # two more epochs: the same 5 damaged samples, counted once
    assert s.stats.total == 5 and s.epoch == 2


def test_truncated_tar_is_counted_by_key(tmp_path):
    (path,) = write_shards(tmp_path, n_shards=1, per_shard=12)
    data = open(path, "rb").read()
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    cut = len(data) // 2
    intact = {m.name.split(".")[0] for m in members} - {m.name.split(".")[0] for m in members
                                                          if m.offset_data + m.size > cut}  # fmt: skip
    open(path, "wb").write(data[:cut])
    s = _stream([path], batch_size=1)
    got = [next(iter(s)) for _ in range(len(intact))]
    assert len(got) == len(intact) and s.stats.total == 12 - len(intact) > 0
    assert s.stats.notes == {"train-00000.tar": {"truncated_tar"}}
    assert set(s.stats.as_dict()["by_reason"]) <= {"missing_sample", "incomplete_sample"}


def test_labels_and_heldout_split(shards):
    s = _stream(shards["train"], with_labels=True)
    b = next(iter(s))
    assert b.labels.dtype == torch.int64 and set(b.labels.tolist()) <= {0, 1, 2, 3}
    n = [sum(x.pixels.shape[0] for x in heldout_batches(shards["heldout"], rank=r, world_size=2, batch_size=4,
                                                          image_size=32)) for r in range(2)]
    assert n == [16, 16]
    capped = heldout_batches(shards["heldout"], rank=0, world_size=1, batch_size=4, image_size=32, max_samples=10)
    assert sum(x.pixels.shape[0] for x in capped) == 10


def test_bad_shard_lists_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="'shards': the shard list is empty"):
        expand_shards([])
    with pytest.raises(FileNotFoundError, match="missing-00000.tar"):
        expand_shards([str(tmp_path / "missing-{00000..00001}.tar")])
    with pytest.raises(ValueError, match="'heldout_shards': shard https://host/x.tar is not a local file"):
        expand_shards(["https://host/x.tar"], "heldout_shards")


def test_loader_stream_resumes_and_counts(shards, tmp_path):
    from aloe.align.loader_stream import LoaderStream

    kw = dict(rank=0, world_size=1, seed=3, batch_size=5, image_size=32, shuffle_buffer=8)
    full = LoaderStream(shards["train"], **kw)
    it = iter(full)
    [next(it) for _ in range(4)]
    state = full.state_dict()
    rest = [next(it) for _ in range(25)]  # crosses the epoch end (96 samples: 19 full batches)
    assert full.state_dict()["epoch"] == 1 and full.dropped_remainder == 1
    again = list(itertools.islice(iter(LoaderStream(shards["train"], resume_state=state, **kw)), 25))
    assert all(torch.equal(a.pixels, b.pixels) for a, b in zip(rest, again))
    bad = write_shards(tmp_path, n_shards=1, per_shard=20, corrupt_every=4)
    s = LoaderStream(bad, **{**kw, "batch_size": 3})
    list(itertools.islice(iter(s), 5))
    assert s.stats.as_dict()["by_shard"] == {"train-00000.tar": {"corrupt_image": 5}}
    with pytest.raises(ValueError, match="'data_loader'"):
        LoaderStream(bad, with_labels=True, **kw)


def test_keys_file_restricts_samples(shards, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("heldout000_000001\nheldout000_000005\nheldout000_000007\n")
    n = sum(b.pixels.shape[0] for b in heldout_batches(shards["heldout"], rank=0, world_size=1, batch_size=2,
                                                        image_size=32, keys_file=str(keys)))
    assert n == 3


def test_fewer_samples_than_a_batch_fails_instead_of_waiting_forever(tmp_path):
    """A tiny subset (e.g. 0.1 % of a small set) drops its only, partial batch every epoch."""
    from aloe.align.loader_stream import LoaderStream

    few = write_shards(tmp_path, n_shards=1, per_shard=3)
    stream = LoaderStream(few, rank=0, world_size=1, seed=0, batch_size=8, image_size=32, shuffle_buffer=8)
    with pytest.raises(RuntimeError, match=r"fewer samples than one micro-batch \(8; 3 dropped\)"):
        next(iter(stream))
