"""Key subsets: nested, identical across reruns, held-out split disjoint from training keys."""

from __future__ import annotations

import math

import pytest

from aloe.data.shards import write_split
from aloe.data.subsets import key_score, list_shard_keys, make_key_splits, materialize_subset, read_keys
from aloe.data.tario import SkipCounter, iter_shard

FRACTIONS = (0.001, 0.01, 0.1, 0.5, 1.0)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    samples = ({"png": f"img{i}".encode(), "txt": f"caption {i}".encode()} for i in range(8000))
    write_split(root, "a", samples, samples_per_shard=1000)
    return root / "a"


def test_subsets_nested_stable_and_disjoint(shard_dir, tmp_path):
    keys = list_shard_keys(shard_dir)
    assert len(keys) == 8000 and keys == sorted(keys)
    s1 = make_key_splits(shard_dir, tmp_path / "r1", fractions=FRACTIONS, val_size=300, seed=5)
    s2 = make_key_splits(shard_dir, tmp_path / "r2", fractions=reversed(FRACTIONS), val_size=300, seed=5)
    assert s1 == s2
    for name in ["val.txt", "splits.json"] + [f"train_{f:g}.txt" for f in FRACTIONS]:
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes()

    val = set(read_keys(tmp_path / "r1" / "val.txt"))
    assert len(val) == 300
    subsets = [set(read_keys(tmp_path / "r1" / f"train_{f:g}.txt")) for f in FRACTIONS]
    for small, large in zip(subsets, subsets[1:]):
        assert small < large  # strictly nested
    assert subsets[-1] == set(keys) - val  # 100 % = everything but the held-out split
    for subset, f in zip(subsets, FRACTIONS):
        assert not subset & val
        expected = f * len(subsets[-1])
        assert abs(len(subset) - expected) <= 5 * math.sqrt(expected) + 1
        assert s1["subsets"][f"train_{f:g}"]["num_keys"] == len(subset)
    # membership depends on (key, seed) only
    assert all(key_score(k, 5, "subset") < 0.01 for k in subsets[1])

    other = make_key_splits(shard_dir, tmp_path / "r3", fractions=[0.1], val_size=300, seed=6)
    assert set(read_keys(tmp_path / "r3" / "train_0.1.txt")) != subsets[2]
    assert other["val"]["num_keys"] == 300


def test_bad_split_config(shard_dir, tmp_path):
    with pytest.raises(ValueError, match="config key: fractions"):
        make_key_splits(shard_dir, tmp_path, fractions=[0.0, 0.1], val_size=10, seed=0)
    with pytest.raises(ValueError, match="config key: val_size"):
        make_key_splits(shard_dir, tmp_path, fractions=[0.1], val_size=8000, seed=0)
    with pytest.raises(FileNotFoundError, match="no \\*.tar shards"):
        list_shard_keys(tmp_path)


def test_materialize_subset_copies_exactly_the_listed_samples(shard_dir, tmp_path):
    make_key_splits(shard_dir, tmp_path / "splits", fractions=[0.01], val_size=0, seed=1)
    wanted = read_keys(tmp_path / "splits" / "train_0.01.txt")
    summary = materialize_subset(shard_dir, tmp_path / "splits" / "train_0.01.txt",
                                 tmp_path / "subset", samples_per_shard=64)  # a folder of shards
    assert summary["written"] == summary["requested"] == len(wanted)
    counter = SkipCounter()
    got = [s for t in sorted((tmp_path / "subset").glob("*.tar")) for s in iter_shard(t, counter)]
    assert sorted(s["__key__"] for s in got) == wanted
    for s in got:
        index = int(s["__key__"].split("_")[1])
        assert s["png"] == f"img{index}".encode() and s["txt"] == f"caption {index}".encode()
