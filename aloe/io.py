"""Atomic file output: every artefact is written to a temp file in the same folder, then renamed.

A crash therefore never leaves a partial file under the final name, which is what Snakemake
and the resume logic rely on to tell finished outputs from unfinished ones. ``tempfile`` creates
its files 0600 and folders 0700 whatever the umask, and so do some writers (safetensors 0.8 writes
0600); the outputs here get the modes a plain ``open`` / ``mkdir`` would give (0644 / 0755 under
umask 0022), so a project group can read them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator


def process_umask() -> int:
    """The process umask (read without changing it where /proc tells it; Linux >= 4.7)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


def make_temp_dir(parent: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """``tempfile.mkdtemp`` in ``parent`` with the mode ``mkdir`` would give (0777 less the umask)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(tmp, 0o777 & ~process_umask())
    return tmp


def share_modes(path: str | os.PathLike) -> None:
    """Give ``path`` (and, for a folder, everything under it) the mode that ``open`` / ``mkdir``
    would give under the umask: files 0666 (0777 if executable) and folders 0777, less the umask.
    Symlinks, and files of other owners (hard links to a shared copy), are left alone."""
    path = Path(path)
    mask = process_umask()
    paths = [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else [path]
    for p in paths:
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
            continue
        full = 0o777 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111 else 0o666
        if stat.S_IMODE(st.st_mode) != full & ~mask:
            os.chmod(p, full & ~mask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success rename it over ``path``.

    ``suffix`` keeps an extension on the temp name for writers that dispatch on it
    (e.g. ``np.save`` appends ``.npy`` when missing).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # set last: the writer may have replaced the file or written a folder
            share_modes(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to ``path``; on success it replaces ``path`` (removed first if present)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        yield tmp
        share_modes(tmp)  # what the writers put inside too (safetensors files are 0600)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())
