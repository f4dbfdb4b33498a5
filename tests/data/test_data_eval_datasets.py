"""Evaluation-dataset preparation: manual-path errors, manual layouts, zero-shot metadata."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from aloe.data.eval_datasets import EVAL_DATASETS, prepare_eval_dataset
from aloe.data.eval_loader import EvalLoader
from aloe.data.manual_datasets import ManualDatasetError
from aloe.data.shards import read_meta
from aloe.data.synthetic_depth import render_scene
from aloe.data.zero_shot import format_prompts, load_class_names, load_templates


def jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), (value, 255 - value, 7)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name", ["imagenet1k", "stanford_cars", "nyuv2"])
def test_manual_dataset_without_path_names_key_and_layout(name, tmp_path):
    with pytest.raises(ManualDatasetError) as err:
        prepare_eval_dataset(name, tmp_path / "out", manual_path=None, config_key=f"cfg.{name}.path")
    message = str(err.value)
    assert f"cfg.{name}.path" in message and "no path is set" in message
    expected = {"imagenet1k": "<path>/train/n01440764/*.JPEG", "stanford_cars": "devkit/cars_meta.mat",
                "nyuv2": "<path>/{train,test}/depth/<id>.npy"}[name]
    assert expected in message
    with pytest.raises(ManualDatasetError, match="is not a folder"):
        prepare_eval_dataset(name, tmp_path / "out", manual_path=tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()  # nothing written before the check


def test_wrong_layouts_say_what_is_missing(tmp_path):
    (tmp_path / "in/train/n00000001").mkdir(parents=True)
    (tmp_path / "in/val").mkdir()
    with pytest.raises(ManualDatasetError, match="has 1 WordNet-id class folders, expected 1000") as err:
        prepare_eval_dataset("imagenet1k", tmp_path / "out", manual_path=tmp_path / "in")
    assert "eval_datasets.imagenet1k.path" in str(err.value)
    with pytest.raises(ManualDatasetError, match="cars_train, cars_test"):
        prepare_eval_dataset("stanford_cars", tmp_path / "out", manual_path=tmp_path / "in")
    (tmp_path / "nyu/train/rgb").mkdir(parents=True)
    with pytest.raises(ManualDatasetError, match="train/depth is missing"):
        prepare_eval_dataset("nyuv2", tmp_path / "out", manual_path=tmp_path / "nyu")
    with pytest.raises(KeyError, match="unknown evaluation dataset"):
        prepare_eval_dataset("mnist", tmp_path / "out")
    with pytest.raises(ValueError, match="download_root"):
        prepare_eval_dataset("cifar10", tmp_path / "out")
    assert len(EVAL_DATASETS) == 11


def test_imagenet_manual_layout_is_copied_byte_for_byte(tmp_path):
    rng = np.random.default_rng(0)
    wnids = sorted(f"n{n:08d}" for n in rng.choice(10**8, size=1000, replace=False))
    for split, per_class in (("train", 1), ("val", 1)):
        for c, wnid in enumerate(wnids):
            folder = tmp_path / "in" / split / wnid
            folder.mkdir(parents=True)
            for j in range(per_class):
                (folder / f"{wnid}_{j}.JPEG").write_bytes(jpeg(c % 256))
    meta = prepare_eval_dataset("imagenet1k", tmp_path / "out", manual_path=tmp_path / "in", samples_per_shard=400)
    assert meta["class_names"][:2] == ["tench", "goldfish"] and len(meta["class_names"]) == 1000
    assert meta["splits"]["test"]["num_samples"] == 1000 and len(meta["splits"]["train"]["shards"]) == 3
    by_key = {k: int(v) for b in EvalLoader(tmp_path / "out", "test", image_size=4, batch_size=250)
              for k, v in zip(b.keys, b.labels)}
    assert [by_key[k] for k in sorted(by_key)] == list(range(1000))  # keys in class order, one image each
    import webdataset as wds

    first = next(iter(wds.WebDataset(str(tmp_path / "out/test/000000.tar"), shardshuffle=False)))
    assert first["jpg"] == jpeg(0) and first["cls"] == b"0"


def test_nyuv2_manual_layout(tmp_path):
    root = tmp_path / "nyu"
    truth = {}
    for split, n in (("train", 2), ("test", 3)):
        for kind in ("rgb", "depth", "normal"):
            (root / split / kind).mkdir(parents=True)
        for i in range(n):
            rgb, depth, normal = render_scene(1, 50, i if split == "train" else 10 + i, 16)
            Image.fromarray(rgb).save(root / split / "rgb" / f"{i:04d}.png")
            np.save(root / split / "depth" / f"{i:04d}.npy", depth)
            np.save(root / split / "normal" / f"{i:04d}.npy", normal)
            truth[(split, i)] = depth
    meta = prepare_eval_dataset("nyuv2", tmp_path / "out", manual_path=root)
    assert meta["task"] == "dense" and meta["splits"]["test"]["num_samples"] == 3
    batch = next(iter(EvalLoader(tmp_path / "out", "test", image_size=16, batch_size=8)))
    assert batch.depth.shape == (3, 16, 16)
    assert torch.equal(batch.depth[2], torch.from_numpy(truth[("test", 2)]))
    (root / "test/normal/0001.npy").unlink()
    with pytest.raises(ManualDatasetError, match="same non-empty set of ids"):
        prepare_eval_dataset("nyuv2", tmp_path / "out2", manual_path=root)
    assert read_meta(tmp_path / "out")["name"] == "nyuv2"


def test_zero_shot_metadata():
    templates = load_templates("openclip_imagenet")
    assert len(templates) == 80 and len(set(templates)) == 80
    assert all(t.count("{}") == 1 for t in templates)
    assert templates[0] == "a bad photo of a {}." and "a photo of a {}." in templates
    assert load_templates("single") == ["a photo of a {}."]
    names = load_class_names("imagenet1k")
    assert len(names) == 1000 and names[0] == "tench" and names[-1] == "toilet paper"
    # OpenCLIP main's IMAGENET_CLASSNAMES names classes 836 and 837 both "sunglasses"
    assert names[835:839] == ["sundial", "sunglasses", "sunglasses", "sunscreen"] and len(set(names)) == 998
    assert hashlib.sha256("\n".join(names).encode()).hexdigest() == (
        "571ae1c583b4be7da87519494c52bf405a46af05d5815627c7a0dee997068b60")
    assert load_class_names("cifar10")[0] == "airplane" and len(load_class_names("cifar100")) == 100
    assert load_class_names("cifar100")[1] == "aquarium fish"
    prompts = format_prompts(["red circle", "blue star"], load_templates("single"))
    assert prompts == [["a photo of a red circle."], ["a photo of a blue star."]]
    with pytest.raises(KeyError, match="available"):
        load_class_names("food101")


def test_failed_download_names_dataset_url_and_local_copy_and_leaves_no_empty_folder(tmp_path):
    """This machine (and CI) reach no dataset host: the real torchvision download fails."""
    from aloe.data.download_guard import DatasetDownloadError

    root = tmp_path / "downloads"
    with pytest.raises(DatasetDownloadError) as err:
        prepare_eval_dataset("dtd", tmp_path / "out", source="torchvision", download_root=root,
                             config_key="paper.evaluation.datasets.dtd.path")
    text = str(err.value)
    url = "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"
    assert f"dtd: the torchvision download from {url}" in text
    assert "set paper.evaluation.datasets.dtd.source: folder and paper.evaluation.datasets.dtd.path" in text
    assert not root.exists()  # torchvision's empty dtd/ folders are gone
