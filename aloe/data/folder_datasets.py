"""Evaluation datasets read from a local folder of images (``source: folder``).

For clusters (and offline rehearsals) where torchvision cannot download, a torchvision dataset
can be given as a folder; the layout is checked before any heavy work and a wrong one raises
``ManualDatasetError`` naming the config key, what is wrong and ``FOLDER_LAYOUT``.

Convention: class folders are named by the label index, zero-padded to 3 digits (``000`` ...
``N-1``), and ``classes.json`` lists the class names in label order, so folder ``007`` holds
the images of ``classes.json[7]``. Index names (not class names) because real class names do
not make safe folder names (FGVC Aircraft has ``F/A-18``). Labels must follow the real
dataset's class order (torchvision's), so that zero-shot prompts name the right class; for the
datasets whose names ship with aloe (CIFAR-10/100) ``classes.json`` must equal them.

The folder's train/test split is used as given (the split table in ``aloe.data.eval_datasets``
says which images the paper uses for each). Image bytes are copied into the shards unchanged,
under ``jpg`` or ``png`` by their decoded format (not by their file extension).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Iterator

from PIL import Image, UnidentifiedImageError

from aloe.data.manual_datasets import layout_error, require_folder
from aloe.data.shards import write_meta, write_split
from aloe.data.zero_shot import META_DIR, load_class_names

FOLDER_LAYOUT = """\
  <path>/classes.json                 JSON list of the N class names in label order
  <path>/train/000/*.{jpg,jpeg,png}   one folder per label, named by the label index zero-padded
  <path>/train/001/*.{jpg,jpeg,png}   to 3 digits (000 ... N-1): folder i holds classes.json[i]
  <path>/test/000/*.{jpg,jpeg,png}    the same N folders for the test split
N is the dataset's real class count and the order is the real (torchvision) label order."""

FOLDER_SPLITS = ("train", "test")
FOLDER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# The real class counts of the torchvision datasets (the only ones read from a folder).
FOLDER_NUM_CLASSES = {
    "cifar10": 10, "cifar100": 100, "food101": 101, "flowers102": 102, "fgvc_aircraft": 100,
    "dtd": 47, "sun397": 397, "caltech101": 101,
}
_SHARD_EXTENSION = {"JPEG": "jpg", "PNG": "png"}


def class_folder_name(label: int) -> str:
    return f"{int(label):03d}"


def _read_class_names(name: str, root: Path, config_key: str) -> list[str]:
    path = root / "classes.json"

    def fail(problem: str) -> Exception:
        return layout_error(name, config_key, str(root), problem, FOLDER_LAYOUT)

    if not path.is_file():
        raise fail(f"{path} is missing")
    try:
        names = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise fail(f"{path} is not valid JSON ({err})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise fail(f"{path} must hold a JSON list of non-empty class-name strings")
    expected = FOLDER_NUM_CLASSES[name]
    if len(names) != expected:
        raise fail(f"{path} lists {len(names)} classes, {name} has {expected}")
    if len(set(names)) != len(names):
        raise fail(f"{path} lists some class names twice")
    if (META_DIR / f"{name}_classes.json").is_file() and names != load_class_names(name):
        raise fail(f"{path} is not in {name}'s label order (aloe/data/meta/{name}_classes.json)")
    return names


def _split_files(name: str, root: Path, split: str, num_classes: int, config_key: str) -> list[tuple[Path, int]]:
    folder = root / split

    def fail(problem: str) -> Exception:
        return layout_error(name, config_key, str(root), problem, FOLDER_LAYOUT)

    if not folder.is_dir():
        raise fail(f"{folder} is missing")
    present = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    expected = [class_folder_name(i) for i in range(num_classes)]
    missing = [n for n in expected if n not in present]
    unexpected = sorted(present - set(expected))
    if missing or unexpected:
        parts = [f"missing {len(missing)} (e.g. {', '.join(missing[:3])})"] if missing else []
        parts += [f"unexpected entries {', '.join(unexpected[:3])}"] if unexpected else []
        raise fail(f"{folder} must hold exactly the class folders 000 ... {expected[-1]}: {'; '.join(parts)}")
    files = []
    for label, sub in enumerate(expected):
        entries = sorted(p for p in (folder / sub).iterdir() if not p.name.startswith("."))
        others = [p.name for p in entries if p.suffix.lower() not in FOLDER_IMAGE_SUFFIXES or not p.is_file()]
        if others:
            raise fail(f"{folder / sub} holds entries that are not .jpg/.jpeg/.png images: {', '.join(others[:3])}")
        if not entries:
            raise fail(f"{folder / sub} (class {label}) has no images")
        files += [(p, label) for p in entries]
    return files


def check_folder_dataset(name: str, path: Any, config_key: str) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Check the layout; return (class names, {split: [(image file, label), ...]})."""
    if name not in FOLDER_NUM_CLASSES:
        raise KeyError(f"{name!r} cannot be read from a folder; folder datasets: {sorted(FOLDER_NUM_CLASSES)}")
    root = require_folder(path, name, config_key, FOLDER_LAYOUT)
    names = _read_class_names(name, root, config_key)
    return names, {split: _split_files(name, root, split, len(names), config_key) for split in FOLDER_SPLITS}


def _folder_samples(files: list[tuple[Path, int]]) -> Iterator[dict[str, bytes]]:
    for path, label in files:
        data = path.read_bytes()
        try:
            fmt = Image.open(io.BytesIO(data)).format
        except UnidentifiedImageError:
            fmt = None
        if fmt not in _SHARD_EXTENSION:
            raise ValueError(f"{path}: not a JPEG or PNG image (decoded format: {fmt})")
        yield {_SHARD_EXTENSION[fmt]: data, "cls": str(label).encode()}


def prepare_folder_dataset(
    name: str, out_dir: str | os.PathLike, *, path: Any, config_key: str, samples_per_shard: int
) -> dict[str, Any]:
    """Check the folder at ``path``, write its splits as shards into ``out_dir``, return meta."""
    class_names, files = check_folder_dataset(name, path, config_key)
    splits = {split: write_split(out_dir, split, _folder_samples(f), samples_per_shard=samples_per_shard)
              for split, f in files.items()}
    return write_meta(out_dir, name=name, task="classification", splits=splits, class_names=class_names,
                      source=f"folder {path}", notes="train / test as in the folder; bytes copied")
