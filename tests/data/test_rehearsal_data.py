"""Rehearsal data: the 11 evaluation datasets through the real preparers, class-dependent images,
Stanford Cars .mat files read by torchvision, url lists downloaded by the real img2dataset stage
from the detached server."""

from __future__ import annotations

import hashlib
import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from aloe.data.eval_datasets import EVAL_DATASETS, prepare_eval_dataset
from aloe.data.eval_loader import EvalLoader
from aloe.data.shards import encode_jpeg, read_meta
from aloe.data.synthetic_depth import render_scene
from aloe.data.tario import SkipCounter, iter_shard
from aloe.data.zero_shot import load_class_names
from aloe.rehearsal.class_images import class_image, name_stream
from aloe.rehearsal.eval_data import write_eval_datasets

# The real class counts, written out here independently of the code under test.
REAL_CLASSES = {"imagenet1k": 1000, "caltech101": 101, "flowers102": 102, "food101": 101, "fgvc_aircraft": 100,
                "dtd": 47, "stanford_cars": 196, "sun397": 397, "cifar10": 10, "cifar100": 100, "nyuv2": 0}
SIZES = dict(seed=3, train_per_class=2, test_per_class=1, image_size=24, nyuv2_train=5, nyuv2_test=3)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    root = tmp_path_factory.mktemp("rehearsal")
    return root, write_eval_datasets(root / "eval", **SIZES)


def test_entries_are_config_entries_with_real_sources(rehearsal):
    root, entries = rehearsal
    assert sorted(entries) == sorted(EVAL_DATASETS) == sorted(REAL_CLASSES)
    for name, entry in entries.items():
        expected_source = "manual" if name in ("imagenet1k", "stanford_cars", "nyuv2") else "folder"
        assert entry == {"source": expected_source, "path": str(root / "eval" / name), "classes": REAL_CLASSES[name]}
    stamp = (root / "eval/eval_datasets.json").stat().st_mtime_ns
    assert write_eval_datasets(root / "eval", **SIZES) == entries  # same parameters: reused, not rewritten
    assert (root / "eval/eval_datasets.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("name", EVAL_DATASETS)
def test_every_dataset_goes_through_the_real_preparer(rehearsal, tmp_path, name):
    _, entries = rehearsal
    entry = entries[name]
    meta = prepare_eval_dataset(name, tmp_path / name, source=entry["source"], manual_path=entry["path"],
                                config_key=f"paper.evaluation.datasets.{name}.path", samples_per_shard=500)
    assert read_meta(tmp_path / name) == meta
    counts = {split: meta["splits"][split]["num_samples"] for split in ("train", "test")}
    if name == "nyuv2":
        assert meta["task"] == "dense" and counts == {"train": 5, "test": 3}
        shard = tmp_path / name / meta["splits"]["test"]["shards"][0]
        first = next(iter_shard(shard, SkipCounter()))
        rgb, depth, normal = render_scene(3, name_stream("nyuv2", "test"), 0, 24)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(first["png"]))), rgb)
        assert np.array_equal(np.load(io.BytesIO(first["depth.npy"])), depth)
        assert np.array_equal(np.load(io.BytesIO(first["normal.npy"])), normal)
        return
    k = REAL_CLASSES[name]
    assert len(meta["class_names"]) == k and counts == {"train": 2 * k, "test": k}
    if name in ("imagenet1k", "cifar10", "cifar100"):
        assert meta["class_names"] == load_class_names(name)  # (OpenCLIP's ImageNet list repeats a name)
    else:
        assert len(set(meta["class_names"])) == k
    by_key = {key: int(v) for b in EvalLoader(tmp_path / name, "test", image_size=8, batch_size=256)
              for key, v in zip(b.keys, b.labels)}
    labels = [by_key[key] for key in sorted(by_key)]  # in the order the preparer wrote them
    assert sorted(labels) == list(range(k))
    if name != "stanford_cars":  # the Cars annotations are in shuffled order, like the real ones
        assert labels == list(range(k))


def test_stanford_cars_mat_files_map_files_to_their_class(rehearsal):
    from torchvision.datasets import StanfordCars

    _, entries = rehearsal
    ds = StanfordCars(entries["stanford_cars"]["path"], split="test", download=False)
    assert len(ds) == 196 and ds.classes[:2] == ["car model 000", "car model 001"]
    labels = [label for _, label in ds._samples]
    assert sorted(labels) == list(range(196)) and labels != sorted(labels)
    for i in (0, 1, 2):
        path, label = ds._samples[i]
        index = int(os.path.basename(path)[:5]) - 1  # test file i+1 holds image i of the split
        assert index == label  # one test image per class: image index == label
        truth = Image.fromarray(class_image(3, "stanford_cars", "test", index, label, 24))
        assert np.array_equal(np.asarray(ds[i][0]), np.asarray(Image.open(io.BytesIO(encode_jpeg(truth)))))


def test_imagenet_uses_the_real_wordnet_ids(rehearsal):
    _, entries = rehearsal
    train = sorted(os.listdir(os.path.join(entries["imagenet1k"]["path"], "train")))
    assert len(train) == 1000 and train[:3] == ["n01440764", "n01443537", "n01484850"] and train[-1] == "n15075141"
    val = os.listdir(os.path.join(entries["imagenet1k"]["path"], "val", "n01443537"))
    assert val == ["ILSVRC2012_val_00000002.JPEG"]


def test_the_shipped_wordnet_ids_are_timms_list():
    """aloe/data/meta/imagenet1k_wnids.txt was written from timm 1.0.31's ImageNetInfo().label_names():
    the same 1000 ids in the same (sorted) order, byte for byte."""
    from aloe.data.zero_shot import META_DIR
    from aloe.rehearsal.eval_data import imagenet_wnids

    data = (META_DIR / "imagenet1k_wnids.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "70002b0ff5de60a3a17a82dbfcff291931f96225ddf941ad2e182fc39e183d15"
    wnids = imagenet_wnids()
    assert len(set(wnids)) == 1000 and wnids == sorted(wnids) and all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert wnids.index("n01443537") == 1 and wnids[-1] == "n15075141"


def test_images_are_deterministic_and_class_dependent():
    assert np.array_equal(class_image(0, "dtd", "train", 5, 2, 32), class_image(0, "dtd", "train", 5, 2, 32))
    assert not np.array_equal(class_image(0, "dtd", "train", 5, 2, 32), class_image(1, "dtd", "train", 5, 2, 32))
    assert not np.array_equal(class_image(0, "dtd", "train", 5, 2, 32), class_image(0, "dtd", "test", 5, 2, 32))
    from sklearn.linear_model import LogisticRegression

    def features(split, per_class):
        images = [class_image(0, "dtd", split, c * per_class + j, c, 32) for c in range(47) for j in range(per_class)]
        pixels = np.asarray(images, dtype=np.float64).reshape(len(images), -1, 3) / 255
        return np.sort(pixels, axis=1)[:, ::32].reshape(len(images), -1), np.repeat(np.arange(47), per_class)

    (x_train, y_train), (x_test, y_test) = features("train", 3), features("test", 2)
    accuracy = LogisticRegression(max_iter=2000).fit(x_train, y_train).score(x_test, y_test)
    assert accuracy > 0.2  # chance is 1/47 = 0.021


def test_bad_sizes_and_names_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="train_per_class must be at least 1, got 0"):
        write_eval_datasets(tmp_path, train_per_class=0)
    with pytest.raises(KeyError, match="unknown evaluation datasets \\['imagenet'\\]"):
        write_eval_datasets(tmp_path, names=("imagenet",))
    assert list(tmp_path.iterdir()) == []
