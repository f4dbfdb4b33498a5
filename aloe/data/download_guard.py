"""A failed torchvision download explained: the dataset, the URL tried, where a copy goes instead.

torchvision raises a bare ``URLError`` (or ``RuntimeError`` / ``OSError``) when a download cannot
run, e.g. on a compute node without internet, and leaves the folders it created behind.
``download_guard`` turns that into :class:`DatasetDownloadError` and removes the empty folders,
so a rerun starts clean and a user knows what to do.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
from pathlib import Path
from typing import Iterator

# where torchvision downloads each dataset from (its class attributes, read at error time)
_URL_ATTRIBUTES = {
    "cifar10": ("CIFAR10", "url"), "cifar100": ("CIFAR100", "url"), "food101": ("Food101", "_URL"),
    "flowers102": ("Flowers102", "_download_url_prefix"), "fgvc_aircraft": ("FGVCAircraft", "_URL"),
    "dtd": ("DTD", "_URL"), "sun397": ("SUN397", "_DATASET_URL"),
}
_CALTECH101 = "Google Drive (torchvision.datasets.Caltech101 downloads with gdown)"


class DatasetDownloadError(RuntimeError):
    """An evaluation dataset could not be downloaded."""


def download_url(name: str) -> str:
    if name == "caltech101":
        return _CALTECH101
    import torchvision.datasets as tvd

    cls_name, attribute = _URL_ATTRIBUTES[name]
    return str(getattr(getattr(tvd, cls_name), attribute, "(unknown)"))


def _folders(root: Path) -> set[Path]:
    return {Path(d) for d, _, _ in os.walk(root)} if root.is_dir() else set()


@contextlib.contextmanager
def download_guard(name: str, root: str | os.PathLike, config_key: str) -> Iterator[None]:
    """Run a torchvision download of ``name`` into ``root``; on failure remove the folders it left
    empty and raise :class:`DatasetDownloadError` naming the URL and the local-copy alternative.
    ``config_key`` is the dataset's ``...path`` key (its parent gets ``source: folder``)."""
    root = Path(root)
    before = _folders(root) | ({root} if root.is_dir() else set())
    try:
        yield
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        for folder in sorted(_folders(root) - before, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only empty ones; a partial archive is kept for the next try
        entry = config_key.rsplit(".", 1)[0]
        raise DatasetDownloadError(
            f"{name}: the torchvision download from {download_url(name)} into {root} failed "
            f"({type(err).__name__}: {err}). Without internet here, download it where there is internet, or "
            f"put a local copy in the folder layout (aloe.data.folder_datasets: <path>/classes.json and "
            f"<path>/{{train,test}}/<label 000...>/images) and set {entry}.source: folder and {entry}.path: <path>"
        ) from err
