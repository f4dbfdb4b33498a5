"""Preparing the evaluation datasets into the common shard format (``aloe.data.shards``).

``prepare_eval_dataset(name, out_dir, source=..., download_root=..., manual_path=...)`` is the
one entry point. ``source`` (config ``evaluation.datasets.<name>.source``) says where the data
comes from:

- ``torchvision`` (default for the 8 torchvision datasets): downloaded into ``download_root``;
- ``manual`` (default and only choice for ImageNet-1k, Stanford Cars and NYUv2): read from
  ``manual_path`` (``aloe.data.manual_datasets``);
- ``folder`` (torchvision datasets): read from ``manual_path`` laid out as class folders
  (``aloe.data.folder_datasets``), for machines where torchvision cannot download.

Manual and folder layouts are checked before any heavy work.

Splits written ("train" feeds probes, "test" is reported; the LP validation split is carved
from "train" by the evaluation code):

=============  =====================================  =====================================
dataset        train                                  test
=============  =====================================  =====================================
cifar10/100    official train (50k)                   official test (10k)
food101        official train (75,750)                official test (25,250)
flowers102     official train + val (2,040)           official test (6,149)
fgvc_aircraft  official trainval, variant level (100)  official test
dtd            partition 1 train + val                partition 1 test
sun397         no official split: images with          the others
               key_score(index, seed, "sun397") >= 0.2
caltech101     no official split (VTAB style): 30      the rest; BACKGROUND_Google excluded
               images per class chosen by key_score    (torchvision drops it)
imagenet1k     ILSVRC-2012 train                      ILSVRC-2012 val (50k)
stanford_cars  official train                         official test
nyuv2          manual layout (Probe3D split)          654 test images
=============  =====================================  =====================================

Images from files (ImageNet) are copied byte for byte; images that torchvision hands over as
decoded PIL images are stored as PNG when at most 64 px (CIFAR: lossless) and otherwise as
JPEG quality 95.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image

from aloe.data import folder_datasets, manual_datasets
from aloe.data.download_guard import download_guard
from aloe.data.shards import encode_jpeg, encode_png, write_meta, write_split
from aloe.data.subsets import key_score
from aloe.data.zero_shot import load_class_names
from aloe.registry import DATASETS

TORCHVISION = tuple(name for name, entry in DATASETS.items() if "torchvision" in entry.sources)
MANUAL = tuple(name for name, entry in DATASETS.items() if "manual" in entry.sources)
EVAL_DATASETS = TORCHVISION + MANUAL
# Which ``source`` values each dataset accepts ("synthetic" sets are made by the synthetic world).
# source -> datasets it can provide (aloe.registry: each dataset's `sources`)
SOURCES = {source: tuple(n for n in EVAL_DATASETS if source in DATASETS[n].sources)
           for source in ("torchvision", "folder", "manual")}
SUN397_TEST_FRACTION = 0.2
CALTECH101_TRAIN_PER_CLASS = 30


def encode_image_sample(image: Image.Image, label: int) -> dict[str, bytes]:
    if max(image.size) <= 64:
        return {"png": encode_png(image), "cls": str(int(label)).encode()}
    return {"jpg": encode_jpeg(image), "cls": str(int(label)).encode()}


class _Indexed:
    """A view of a map-style dataset restricted to ``indices`` (lazy; one sample at a time)."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __iter__(self):
        for i in self.indices:
            image, label = self.dataset[i]
            yield encode_image_sample(image, label)


def _whole(dataset: Any) -> _Indexed:
    return _Indexed(dataset, range(len(dataset)))


def _concat(*parts: _Indexed) -> Iterable[dict[str, bytes]]:
    for part in parts:
        yield from part


def _tv(cls_name: str) -> Callable:
    import torchvision.datasets as tvd

    return getattr(tvd, cls_name)


def _cifar(name: str, root: Path, seed: int):
    cls = _tv("CIFAR10" if name == "cifar10" else "CIFAR100")
    train, test = cls(root, train=True, download=True), cls(root, train=False, download=True)
    names = load_class_names(name)
    if [c.replace("_", " ") for c in train.classes] != names:
        raise ValueError(f"{name}: torchvision class order differs from aloe/data/meta/{name}_classes.json")
    return names, {"train": _whole(train), "test": _whole(test)}


def _food101(root: Path, seed: int):
    train, test = (_tv("Food101")(root, split=s, download=True) for s in ("train", "test"))
    return [c.replace("_", " ") for c in train.classes], {"train": _whole(train), "test": _whole(test)}


def _flowers102(root: Path, seed: int):
    parts = {s: _tv("Flowers102")(root, split=s, download=True) for s in ("train", "val", "test")}
    # torchvision ships no Flowers102 class names; zero-shot on Flowers is not part of the paper.
    names = [f"flower category {i + 1}" for i in range(102)]
    return names, {"train": _concat(_whole(parts["train"]), _whole(parts["val"])), "test": _whole(parts["test"])}


def _fgvc_aircraft(root: Path, seed: int):
    kw = dict(annotation_level="variant", download=True)
    train, test = (_tv("FGVCAircraft")(root, split=s, **kw) for s in ("trainval", "test"))
    return list(train.classes), {"train": _whole(train), "test": _whole(test)}


def _dtd(root: Path, seed: int):
    parts = {s: _tv("DTD")(root, split=s, partition=1, download=True) for s in ("train", "val", "test")}
    return list(parts["train"].classes), {
        "train": _concat(_whole(parts["train"]), _whole(parts["val"])), "test": _whole(parts["test"])
    }


def _sun397(root: Path, seed: int):
    ds = _tv("SUN397")(root, download=True)
    is_test = [key_score(str(i), seed, "sun397") < SUN397_TEST_FRACTION for i in range(len(ds))]
    train = [i for i, t in enumerate(is_test) if not t]
    test = [i for i, t in enumerate(is_test) if t]
    return list(ds.classes), {"train": _Indexed(ds, train), "test": _Indexed(ds, test)}


def _caltech101(root: Path, seed: int):
    ds = _tv("Caltech101")(root, target_type="category", download=True)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(ds.y):
        by_class.setdefault(int(label), []).append(i)
    train: set[int] = set()
    for members in by_class.values():
        ranked = sorted(members, key=lambda i: key_score(str(i), seed, "caltech101"))
        train.update(ranked[:CALTECH101_TRAIN_PER_CLASS])
    test = [i for i in range(len(ds)) if i not in train]
    return [c.replace("_", " ") for c in ds.categories], {
        "train": _Indexed(ds, sorted(train)), "test": _Indexed(ds, test)
    }


_BUILDERS = {
    "cifar10": lambda root, seed: _cifar("cifar10", root, seed),
    "cifar100": lambda root, seed: _cifar("cifar100", root, seed),
    "food101": _food101,
    "flowers102": _flowers102,
    "fgvc_aircraft": _fgvc_aircraft,
    "dtd": _dtd,
    "sun397": _sun397,
    "caltech101": _caltech101,
}


def _check_source(name: str, source: str | None, config_key: str) -> str:
    """The source to use (``None`` = the dataset's default); ``config_key`` is the path key,
    whose sibling ``.source`` is named in errors."""
    source_key = config_key[: -len(".path")] + ".source" if config_key.endswith(".path") else f"{name} source"
    if source is None:
        return "manual" if name in MANUAL else "torchvision"
    if source == "synthetic":
        raise ValueError(f"{name}: source 'synthetic' ({source_key}) datasets are written by the synthetic world "
                         "(rule synthetic_world), not by prepare_eval_dataset")
    if source not in SOURCES:
        raise ValueError(f"{name}: unknown source {source!r} ({source_key}); choose one of {sorted(SOURCES)}")
    if name not in SOURCES[source]:
        allowed = sorted(s for s, names in SOURCES.items() if name in names)
        raise ValueError(f"{name}: source {source!r} ({source_key}) is not available for {name}; use {allowed}")
    return source


def prepare_eval_dataset(
    name: str,
    out_dir: str | os.PathLike,
    *,
    source: str | None = None,
    download_root: str | os.PathLike | None = None,
    manual_path: str | os.PathLike | None = None,
    config_key: str | None = None,
    samples_per_shard: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Prepare dataset ``name`` into ``out_dir`` (common format) and return its ``meta.json``.

    ``source``: "torchvision", "manual" or "folder" (see the module docstring); ``None`` = the
    dataset's default (manual for ImageNet-1k, Stanford Cars, NYUv2; torchvision otherwise).
    ``download_root``: torchvision download/cache folder (source torchvision).
    ``manual_path``: the folder with the manually obtained data (sources manual and folder);
    ``config_key`` is the config entry that holds it, named in error messages
    (default ``eval_datasets.<name>.path``).
    """
    if name not in EVAL_DATASETS:
        raise KeyError(f"unknown evaluation dataset {name!r}; known: {EVAL_DATASETS}")
    config_key = config_key or f"eval_datasets.{name}.path"
    source = _check_source(name, source, config_key)
    out_dir = Path(out_dir)
    (out_dir / "meta.json").unlink(missing_ok=True)
    if source == "folder":
        return folder_datasets.prepare_folder_dataset(
            name, out_dir, path=manual_path, config_key=config_key, samples_per_shard=samples_per_shard
        )
    if source == "manual":
        return manual_datasets.prepare_manual_dataset(
            name, out_dir, manual_path=manual_path, config_key=config_key, samples_per_shard=samples_per_shard
        )
    if download_root is None:
        raise ValueError(f"{name}: a torchvision download folder is required (download_root)")
    with download_guard(name, download_root, config_key):
        class_names, splits = _BUILDERS[name](Path(download_root), seed)
    written = {split: write_split(out_dir, split, samples, samples_per_shard=samples_per_shard)
               for split, samples in splits.items()}
    notes = f"split seed {seed}; splits documented in aloe.data.eval_datasets"
    return write_meta(out_dir, name=name, task="classification", splits=written, class_names=class_names,
                      source=f"torchvision.datasets ({name})", notes=notes)
