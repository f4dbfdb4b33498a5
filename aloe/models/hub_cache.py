"""Write a folder of model files as a snapshot in the huggingface_hub cache layout.

The layout (huggingface_hub "Manage the cache" guide; ``file_download.try_to_load_from_cache``)::

    <cache_dir>/models--<org>--<name>/
        blobs/<etag>                              the file contents, named by their hub etag
        refs/main                                 the 40-hex commit of the snapshot (no newline)
        snapshots/<commit>/<file> -> ../../blobs/<etag>

Etags follow the hub: the sha256 of git-LFS files (weights), the git blob sha1 of the others.
Where the file system refuses symlinks the snapshot holds copies, as huggingface_hub does.
With ``HF_HUB_OFFLINE=1``, ``transformers`` resolves ``refs/main`` and reads the snapshot.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Optional

from huggingface_hub.file_download import repo_folder_name

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".model", ".msgpack", ".h5")
_REVISION = re.compile(r"^[0-9a-f]{40}$")


def _etag(path: Path) -> str:
    if path.suffix in LFS_SUFFIXES:
        digest = hashlib.sha256()
    else:  # git blob id: sha1 over "blob <size>\0" + contents
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _link(blob: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(os.path.relpath(blob, link.parent), link)
    except OSError:
        shutil.copy2(blob, link)


def write_snapshot(source: Path, repo_id: str, cache_dir: str | os.PathLike, *,
                   revision: Optional[str] = None) -> Path:
    """Move the files of ``source`` into ``cache_dir`` as the ``main`` snapshot of ``repo_id``;
    returns the snapshot folder. ``revision`` defaults to a hash of the file etags, so the same
    files give the same commit. ``source`` should lie on the cache's file system (files are moved)."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"hub id must look like 'org/name', got {repo_id!r}")
    files = sorted(p for p in Path(source).rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{source} holds no files")
    etags = {p.relative_to(source).as_posix(): _etag(p) for p in files}
    if revision is None:
        revision = hashlib.sha1("".join(f"{k}:{v}\n" for k, v in sorted(etags.items())).encode()).hexdigest()
    if not _REVISION.match(revision):
        raise ValueError(f"revision must be 40 lowercase hex digits, got {revision!r}")
    repo = Path(cache_dir) / repo_folder_name(repo_id=repo_id, repo_type="model")
    snapshot = repo / "snapshots" / revision
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.rmtree(repo / ".no_exist" / revision, ignore_errors=True)  # stale "missing file" marks
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        name = path.relative_to(source).as_posix()
        blob = repo / "blobs" / etags[name]
        if blob.exists():
            path.unlink()
        else:
            os.replace(path, blob)
        _link(blob, snapshot / name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
