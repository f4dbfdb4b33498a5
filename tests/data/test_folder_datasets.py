"""source: folder - torchvision datasets read from class folders; layout errors; source checks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from aloe.data.eval_datasets import prepare_eval_dataset
from aloe.data.eval_loader import EvalLoader
from aloe.data.manual_datasets import ManualDatasetError
from aloe.data.tario import SkipCounter, iter_shard
from aloe.data.zero_shot import load_class_names

KEY = "paper.evaluation.datasets.cifar10.path"


def image_bytes(value: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (9, 7), (value, 255 - value, 40)).save(buf, format=fmt)
    return buf.getvalue()


def make_cifar10_folder(root, per_class=(2, 1)):
    """Class c's images are a flat colour of value 20*c; file names rotate the three suffixes and
    the last train image of each class is a PNG misnamed .jpg."""
    root.mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps(load_class_names("cifar10")))
    for split, n in zip(("train", "test"), per_class):
        for c in range(10):
            folder = root / split / f"{c:03d}"
            folder.mkdir(parents=True)
            for j in range(n):
                suffix = (".png", ".jpg", ".jpeg")[(c + j) % 3]
                data = image_bytes(20 * c, "PNG" if suffix == ".png" else "JPEG")
                if split == "train" and j == n - 1:
                    suffix, data = ".jpg", image_bytes(20 * c, "PNG")
                (folder / f"img_{j}{suffix}").write_bytes(data)
    return root


def test_folder_source_reads_labels_in_folder_order_and_copies_bytes(tmp_path):
    root = make_cifar10_folder(tmp_path / "in")
    meta = prepare_eval_dataset("cifar10", tmp_path / "out", source="folder", manual_path=root, config_key=KEY,
                                samples_per_shard=7)
    assert meta["class_names"] == load_class_names("cifar10")
    assert meta["splits"]["train"]["num_samples"] == 20 and meta["splits"]["test"]["num_samples"] == 10
    assert len(meta["splits"]["train"]["shards"]) == 3
    assert meta["source"] == f"folder {root}"
    labels = [int(v) for b in EvalLoader(tmp_path / "out", "train", image_size=4, batch_size=8) for v in b.labels]
    assert labels == [c for c in range(10) for _ in range(2)]
    batch = next(iter(EvalLoader(tmp_path / "out", "test", image_size=4, batch_size=10)))
    red = batch.pixels[:, 0].mean(dim=(1, 2)).numpy() * 255  # flat colours: red = 20 * label
    np.testing.assert_allclose(red, 20 * np.arange(10), atol=3)
    counter = SkipCounter()
    samples = [s for rel in meta["splits"]["train"]["shards"] for s in iter_shard(tmp_path / "out" / rel, counter)]
    assert counter.total == 0
    first, second = samples[0], samples[1]  # class 0: img_0.png, then the PNG misnamed img_1.jpg
    assert first["png"] == (root / "train/000/img_0.png").read_bytes()
    assert "jpg" not in second and second["png"] == (root / "train/000/img_1.jpg").read_bytes()
    assert samples[2]["jpg"] == (root / "train/001/img_0.jpg").read_bytes()  # JPEG kept as JPEG bytes


def expect_layout_error(tmp_path, root, match):
    with pytest.raises(ManualDatasetError, match=match) as err:
        prepare_eval_dataset("cifar10", tmp_path / "out", source="folder", manual_path=root, config_key=KEY)
    message = str(err.value)
    assert KEY in message and "<path>/train/000/*.{jpg,jpeg,png}" in message and "<path>/classes.json" in message
    assert not (tmp_path / "out").exists()  # nothing written before the check
    return message


def test_folder_layout_errors_name_key_problem_and_layout(tmp_path):
    expect_layout_error(tmp_path, None, "no path is set")
    expect_layout_error(tmp_path, tmp_path / "nowhere", "is not a folder")
    root = make_cifar10_folder(tmp_path / "in")
    classes = root / "classes.json"
    classes.unlink()
    expect_layout_error(tmp_path, root, "classes.json is missing")
    classes.write_text("[not json")
    expect_layout_error(tmp_path, root, "is not valid JSON")
    classes.write_text(json.dumps(["cat", "dog", "frog"]))
    expect_layout_error(tmp_path, root, "lists 3 classes, cifar10 has 10")
    classes.write_text(json.dumps(list(reversed(load_class_names("cifar10")))))
    expect_layout_error(tmp_path, root, "not in cifar10's label order")
    classes.write_text(json.dumps(load_class_names("cifar10")))

    (root / "test/009").rename(root / "test/truck")
    message = expect_layout_error(tmp_path, root, "missing 1 \\(e.g. 009\\); unexpected entries truck")
    assert "000 ... 009" in message
    (root / "test/truck").rename(root / "test/009")
    (root / "train/004/notes.txt").write_text("hello")
    expect_layout_error(tmp_path, root, "train/004 holds entries that are not .jpg/.jpeg/.png images: notes.txt")
    (root / "train/004/notes.txt").unlink()
    for f in (root / "test/003").iterdir():
        f.unlink()
    expect_layout_error(tmp_path, root, "test/003 \\(class 3\\) has no images")


def test_undecodable_image_is_named(tmp_path):
    root = make_cifar10_folder(tmp_path / "in")
    (root / "test/005/img_0.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="test/005/img_0.jpg: not a JPEG or PNG image"):
        prepare_eval_dataset("cifar10", tmp_path / "out", source="folder", manual_path=root, config_key=KEY)
    assert not (tmp_path / "out/meta.json").exists()


@pytest.mark.parametrize(
    "name, source, match",
    [("cifar10", "manual", "source 'manual' \\(paper.evaluation.datasets.cifar10.source\\) is not available for "
                           "cifar10; use \\['folder', 'torchvision'\\]"),
     ("nyuv2", "folder", "source 'folder' \\(paper.evaluation.datasets.nyuv2.source\\) is not available for nyuv2; "
                         "use \\['manual'\\]"),
     ("dtd", "synthetic", "written by the synthetic world"),
     ("dtd", "kaggle", "unknown source 'kaggle' \\(paper.evaluation.datasets.dtd.source\\)")],
)
def test_source_is_checked_against_the_dataset(tmp_path, name, source, match):
    with pytest.raises(ValueError, match=match):
        prepare_eval_dataset(name, tmp_path / "out", source=source, manual_path=tmp_path,
                             config_key=f"paper.evaluation.datasets.{name}.path")


def test_default_and_explicit_torchvision_source_need_a_download_root(tmp_path):
    for source in (None, "torchvision"):
        with pytest.raises(ValueError, match="download_root"):
            prepare_eval_dataset("cifar10", tmp_path / "out", source=source)
