"""Small local copies of the 11 evaluation datasets, in the layouts the project's preparers read.

``write_eval_datasets(root, ...)`` writes, deterministically from ``seed``::

    root/imagenet1k/{train,val}/<wnid>/*.JPEG        manual ILSVRC layout, the 1000 real WordNet ids
                                                     (aloe/data/meta/imagenet1k_wnids.txt), sorted
    root/stanford_cars/stanford_cars/...             torchvision StanfordCars layout (.mat files via
                                                     scipy.io.savemat), 196 classes
    root/nyuv2/{train,test}/{rgb,depth,normal}/      manual NYUv2 layout: ray-cast scenes of
                                                     aloe.data.synthetic_depth (exact depth, normals)
    root/<torchvision name>/classes.json, {train,test}/<label 000...>/   folder layout
                                                     (aloe.data.folder_datasets), 8 datasets
    root/eval_datasets.json                          written last: parameters and config entries

Every classification dataset has its real class count and ``train_per_class`` /
``test_per_class`` images per class, drawn by ``aloe.rehearsal.class_images`` (a class's images
share shape, texture and colour). Class names: the shipped ones for ImageNet-1k and CIFAR, the
torchvision builder's placeholders for Flowers102, else ``"<dataset> class 007"``; Stanford
Cars gets ``"car model 007"``. Folder images rotate through .png/.jpg/.jpeg so every branch of
the folder reader runs. A second call with the same parameters reuses what is there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from aloe.data.eval_datasets import EVAL_DATASETS, TORCHVISION
from aloe.data.folder_datasets import FOLDER_NUM_CLASSES, class_folder_name
from aloe.data.shards import encode_jpeg, encode_npy, encode_png
from aloe.data.synthetic_depth import render_scene
from aloe.data.zero_shot import META_DIR, load_class_names
from aloe.io import atomic_dir, read_json, write_json
from aloe.rehearsal.class_images import class_image, name_stream

INDEX_FILE = "eval_datasets.json"
NUM_CLASSES = {**FOLDER_NUM_CLASSES, "imagenet1k": 1000, "stanford_cars": 196, "nyuv2": 0}
FOLDER_SUFFIXES = (".png", ".jpg", ".jpeg")
CAR_ANNOTATION_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def rehearsal_class_names(name: str) -> list[str]:
    if name in ("imagenet1k", "cifar10", "cifar100"):
        return load_class_names(name)
    if name == "flowers102":
        return [f"flower category {i + 1}" for i in range(102)]  # as aloe.data.eval_datasets names them
    if name == "stanford_cars":
        return [f"car model {i:03d}" for i in range(196)]
    return [f"{name} class {i:03d}" for i in range(NUM_CLASSES[name])]


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 WordNet ids in sorted (label) order, shipped as
    ``aloe/data/meta/imagenet1k_wnids.txt`` (written once from timm 1.0.31's synset list)."""
    wnids = (META_DIR / "imagenet1k_wnids.txt").read_text().split()
    if len(wnids) != 1000 or wnids != sorted(set(wnids)):
        raise RuntimeError(f"{META_DIR / 'imagenet1k_wnids.txt'} is not the 1000 sorted ILSVRC-2012 WordNet ids")
    return wnids


def _labelled(name: str, split: str, per_class: int, seed: int, size: int):
    """(index, label, image) for every image of a split, class by class."""
    for label in range(NUM_CLASSES[name]):
        for j in range(per_class):
            index = label * per_class + j
            yield index, label, class_image(seed, name, split, index, label, size)


def _write_folder(tmp: Path, name: str, seed: int, per_split: dict[str, int], size: int) -> None:
    write_json(tmp / "classes.json", rehearsal_class_names(name))
    for split, per_class in per_split.items():
        for label in range(NUM_CLASSES[name]):
            (tmp / split / class_folder_name(label)).mkdir(parents=True)
        for index, label, img in _labelled(name, split, per_class, seed, size):
            suffix = FOLDER_SUFFIXES[index % len(FOLDER_SUFFIXES)]
            data = encode_png(img) if suffix == ".png" else encode_jpeg(Image.fromarray(img))
            (tmp / split / class_folder_name(label) / f"{index:06d}{suffix}").write_bytes(data)


def _write_imagenet(tmp: Path, name: str, seed: int, per_split: dict[str, int], size: int) -> None:
    wnids = imagenet_wnids()
    for wnid in wnids:
        for folder in ("train", "val"):
            (tmp / folder / wnid).mkdir(parents=True)
    for split, folder in (("train", "train"), ("test", "val")):
        for index, label, img in _labelled(name, split, per_split[split], seed, size):
            wnid = wnids[label]
            file = f"{wnid}_{index}.JPEG" if split == "train" else f"ILSVRC2012_val_{index + 1:08d}.JPEG"
            (tmp / folder / wnid / file).write_bytes(encode_jpeg(Image.fromarray(img)))


def _write_stanford_cars(tmp: Path, name: str, seed: int, per_split: dict[str, int], size: int) -> None:
    import scipy.io

    base = tmp / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    class_names = np.array(rehearsal_class_names(name), dtype=object)  # a MATLAB cell array of strings
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": class_names})
    annotation_files = {"train": base / "devkit" / "cars_train_annos.mat",
                        "test": base / "cars_test_annos_withlabels.mat"}
    for split, annotation_file in annotation_files.items():
        (base / f"cars_{split}").mkdir()
        rows = []
        for index, label, img in _labelled(name, split, per_split[split], seed, size):
            file = f"{index + 1:05d}.jpg"
            (base / f"cars_{split}" / file).write_bytes(encode_jpeg(Image.fromarray(img)))
            rows.append((1, 1, size, size, label + 1, file))  # the .mat classes count from 1
        order = np.random.default_rng([seed, name_stream(name, split, "order")]).permutation(len(rows))
        records = np.array([rows[i] for i in order], dtype=[(f, "O") for f in CAR_ANNOTATION_FIELDS])
        scipy.io.savemat(annotation_file, {"annotations": records})


def _write_nyuv2(tmp: Path, name: str, seed: int, counts: dict[str, int], size: int) -> None:
    for split, n in counts.items():
        for kind in ("rgb", "depth", "normal"):
            (tmp / split / kind).mkdir(parents=True)
        for i in range(n):
            rgb, depth, normal = render_scene(seed, name_stream(name, split), i, size)
            (tmp / split / "rgb" / f"{i:06d}.png").write_bytes(encode_png(rgb))
            (tmp / split / "depth" / f"{i:06d}.npy").write_bytes(encode_npy(depth))
            (tmp / split / "normal" / f"{i:06d}.npy").write_bytes(encode_npy(normal))


_WRITERS: dict[str, tuple[str, Callable[..., None]]] = {
    **{name: ("folder", _write_folder) for name in TORCHVISION},
    "imagenet1k": ("manual", _write_imagenet),
    "stanford_cars": ("manual", _write_stanford_cars),
    "nyuv2": ("manual", _write_nyuv2),
}


def write_eval_datasets(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    train_per_class: int = 2,
    test_per_class: int = 1,
    image_size: int = 32,
    nyuv2_train: int = 8,
    nyuv2_test: int = 4,
    names: tuple[str, ...] = EVAL_DATASETS,
) -> dict[str, dict[str, Any]]:
    """Write the datasets ``names`` under ``root``; return {name: {"source", "path", "classes"}},
    the entries a site file sets for ``<preset>.evaluation.datasets.<name>`` (absolute paths)."""
    unknown = [n for n in names if n not in _WRITERS]
    if unknown:
        raise KeyError(f"unknown evaluation datasets {unknown}; known: {EVAL_DATASETS}")
    sizes = dict(train_per_class=train_per_class, test_per_class=test_per_class, image_size=image_size,
                 nyuv2_train=nyuv2_train, nyuv2_test=nyuv2_test)
    for key, value in sizes.items():
        if int(value) < 1:
            raise ValueError(f"{key} must be at least 1, got {value}")
    root = Path(root).resolve()
    params = dict(seed=seed, **sizes, names=list(names))
    index = root / INDEX_FILE
    if index.is_file():
        previous = read_json(index)
        if previous["params"] == params and all(Path(e["path"]).is_dir() for e in previous["datasets"].values()):
            return previous["datasets"]
        index.unlink()
    entries = {}
    for name in names:
        source, writer = _WRITERS[name]
        counts = {"train": nyuv2_train, "test": nyuv2_test} if name == "nyuv2" else {
            "train": train_per_class, "test": test_per_class}
        with atomic_dir(root / name) as tmp:
            writer(tmp, name, seed, counts, image_size)
        entries[name] = {"source": source, "path": str(root / name), "classes": NUM_CLASSES[name]}
    write_json(index, {"params": params, "datasets": entries})
    return entries
