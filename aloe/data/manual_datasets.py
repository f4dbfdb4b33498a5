"""Datasets that cannot be downloaded automatically: ImageNet-1k, Stanford Cars, NYUv2.

Each has a layout check that runs before any heavy work and raises ``ManualDatasetError``
naming the config key and the exact expected layout; then the data is converted into the
common shard format (``aloe.data.shards``).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from aloe.data.shards import encode_jpeg, write_meta, write_split
from aloe.data.zero_shot import load_class_names

IMAGENET_LAYOUT = """\
  <path>/train/n01440764/*.JPEG ... (1000 folders named by WordNet id, ILSVRC-2012 train)
  <path>/val/n01440764/*.JPEG ...   (the 50,000 validation images sorted into the same 1000 folders)
Get ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org, extract them, and sort
the validation images into class folders (e.g. with the widely used valprep.sh script)."""

STANFORD_CARS_LAYOUT = """\
  <path>/stanford_cars/devkit/cars_meta.mat
  <path>/stanford_cars/devkit/cars_train_annos.mat
  <path>/stanford_cars/cars_train/*.jpg
  <path>/stanford_cars/cars_test/*.jpg
  <path>/stanford_cars/cars_test_annos_withlabels.mat
(the layout torchvision.datasets.StanfordCars reads; the original download URL is dead, so obtain
the files from a mirror, e.g. the Kaggle copy of the dataset)"""

NYUV2_LAYOUT = """\
  <path>/{train,test}/rgb/<id>.png      RGB images (uint8)
  <path>/{train,test}/depth/<id>.npy    float32 (H, W) depth in metres, 0 = invalid
  <path>/{train,test}/normal/<id>.npy   float32 (H, W, 3) unit normals, camera frame
                                        (x right, y down, z forward), all-zero = invalid
with the Probe3D split of the labelled NYUv2 set (test = the 654 official test images)."""

WNID = re.compile(r"^n\d{8}$")


class ManualDatasetError(FileNotFoundError):
    """A manually provided dataset is missing or laid out wrongly."""


def layout_error(name: str, config_key: str, path: Any, problem: str, layout: str) -> ManualDatasetError:
    return ManualDatasetError(
        f"{name}: {problem}. Set config key {config_key} to a folder laid out as:\n{layout}\n(current value: {path!r})"
    )


def require_folder(path: Any, name: str, config_key: str, layout: str) -> Path:
    if path is None or str(path) == "":
        raise layout_error(name, config_key, path, "this dataset must be provided manually and no path is set", layout)
    path = Path(path)
    if not path.is_dir():
        raise layout_error(name, config_key, str(path), f"{path} is not a folder", layout)
    return path


def check_imagenet(path: Any, config_key: str) -> dict[str, Path]:
    root = require_folder(path, "imagenet1k", config_key, IMAGENET_LAYOUT)
    folders = {}
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir():
            raise layout_error("imagenet1k", config_key, str(root), f"{d} is missing", IMAGENET_LAYOUT)
        wnids = sorted(p.name for p in d.iterdir() if p.is_dir() and WNID.match(p.name))
        if len(wnids) != 1000:
            raise layout_error("imagenet1k", config_key, str(root),
                        f"{d} has {len(wnids)} WordNet-id class folders, expected 1000", IMAGENET_LAYOUT)
        folders[split] = wnids
    if folders["train"] != folders["val"]:
        raise layout_error("imagenet1k", config_key, str(root), "train and val class folders differ", IMAGENET_LAYOUT)
    return {"train": root / "train", "test": root / "val"}


def check_stanford_cars(path: Any, config_key: str) -> Path:
    root = require_folder(path, "stanford_cars", config_key, STANFORD_CARS_LAYOUT)
    base = root / "stanford_cars"
    needed = ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train", "cars_test",
              "cars_test_annos_withlabels.mat"]
    missing = [n for n in needed if not (base / n).exists()]
    if missing:
        raise layout_error("stanford_cars", config_key, str(root),
                    f"missing under {base}: {', '.join(missing)}", STANFORD_CARS_LAYOUT)
    return root


def check_nyuv2(path: Any, config_key: str) -> dict[str, list[str]]:
    root = require_folder(path, "nyuv2", config_key, NYUV2_LAYOUT)
    ids = {}
    for split in ("train", "test"):
        kinds = {}
        for kind, ext in (("rgb", ".png"), ("depth", ".npy"), ("normal", ".npy")):
            d = root / split / kind
            if not d.is_dir():
                raise layout_error("nyuv2", config_key, str(root), f"{d} is missing", NYUV2_LAYOUT)
            kinds[kind] = {p.name[: -len(ext)] for p in d.glob(f"*{ext}")}
        if not kinds["rgb"] or not kinds["rgb"] == kinds["depth"] == kinds["normal"]:
            found = "/".join(str(len(kinds[k])) for k in ("rgb", "depth", "normal"))
            problem = f"{root / split}: rgb/depth/normal must hold the same non-empty set of ids (found {found})"
            raise layout_error("nyuv2", config_key, str(root), problem, NYUV2_LAYOUT)
        ids[split] = sorted(kinds["rgb"])
    return ids


def _imagenet_samples(folder: Path) -> Iterator[dict[str, bytes]]:
    from torchvision.datasets import ImageFolder

    for file, label in ImageFolder(str(folder)).samples:
        yield {"jpg": Path(file).read_bytes(), "cls": str(label).encode()}


def _cars_samples(root: Path, split: str) -> tuple[list[str], Iterator[dict[str, bytes]]]:
    from torchvision.datasets import StanfordCars

    ds = StanfordCars(str(root), split=split, download=False)
    return list(ds.classes), ({"jpg": encode_jpeg(img), "cls": str(label).encode()} for img, label in ds)


def _nyuv2_samples(root: Path, split: str, ids: list[str]) -> Iterator[dict[str, bytes]]:
    for i in ids:
        rgb = (root / split / "rgb" / f"{i}.png").read_bytes()
        depth_bytes = (root / split / "depth" / f"{i}.npy").read_bytes()
        normal_bytes = (root / split / "normal" / f"{i}.npy").read_bytes()
        width, height = Image.open(io.BytesIO(rgb)).size
        depth = np.load(io.BytesIO(depth_bytes), allow_pickle=False)
        normal = np.load(io.BytesIO(normal_bytes), allow_pickle=False)
        if depth.shape != (height, width) or normal.shape != (height, width, 3):
            raise ValueError(f"nyuv2 {split}/{i}: depth {depth.shape} / normal {normal.shape} do not match "
                             f"the image size {(height, width)}")
        yield {"png": rgb, "depth.npy": depth_bytes, "normal.npy": normal_bytes}


def prepare_manual_dataset(
    name: str, out_dir: str | os.PathLike, *, manual_path: Any, config_key: str, samples_per_shard: int
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    if name == "imagenet1k":
        folders = check_imagenet(manual_path, config_key)
        splits = {s: write_split(out_dir, s, _imagenet_samples(f), samples_per_shard=samples_per_shard)
                  for s, f in folders.items()}
        return write_meta(out_dir, name=name, task="classification", splits=splits,
                          class_names=load_class_names("imagenet1k"), source=str(manual_path),
                          notes="ILSVRC-2012 train / val (as test); JPEG bytes copied unchanged")
    if name == "stanford_cars":
        root = check_stanford_cars(manual_path, config_key)
        splits, names = {}, []
        for split in ("train", "test"):
            names, samples = _cars_samples(root, split)
            splits[split] = write_split(out_dir, split, samples, samples_per_shard=samples_per_shard)
        return write_meta(out_dir, name=name, task="classification", splits=splits, class_names=names,
                          source=str(manual_path), notes="official train / test; re-encoded JPEG q95")
    if name == "nyuv2":
        ids = check_nyuv2(manual_path, config_key)
        root = Path(manual_path)
        splits = {s: write_split(out_dir, s, _nyuv2_samples(root, s, ids[s]), samples_per_shard=samples_per_shard)
                  for s in ("train", "test")}
        return write_meta(out_dir, name=name, task="dense", splits=splits, source=str(manual_path),
                          notes="Probe3D split; depth in metres, normals in camera frame")
    raise KeyError(f"{name!r} is not a manual dataset")
