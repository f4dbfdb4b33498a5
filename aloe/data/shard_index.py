"""What a shard should hold (its index) and what it does hold (a scan of its tar headers).

Index. Every shard ``NNNN.tar`` has a sibling ``NNNN.parquet`` with columns ``key`` and
``status``: the samples with status "success" are the ones the tar must contain. img2dataset
writes this file for each of its shards; ``write_indexed_shards`` (used by
``aloe.data.shards.write_split`` and subset materialisation) writes the same format. A shard
without an index is still read, and noted ``no_index``: samples lost from its end cannot then
be counted.

Scan. ``scan_tar`` reads only the 512-byte headers (seeking over the data) and returns every
member whose data lies inside the file, grouped by sample key, so samples can be read in key
order with one sample in memory at a time. A tar that stops before its end-of-archive marker
(two zero blocks, written by every tar writer) is ``truncated`` even when the cut falls exactly
on a member boundary, where ``tarfile`` itself sees a complete archive.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from aloe.io import atomic_path

# pandas and webdataset (the workflow extra) are imported where they are used: the model API
# imports this module through aloe.data.eval_loader's view definitions and reads no shards

INDEX_SUFFIX = ".parquet"
END_OF_ARCHIVE = tarfile.BLOCKSIZE * 2


@dataclass
class TarScan:
    members: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # key -> ext -> (offset, size)
    cut: dict[str, set[str]] = field(default_factory=dict)  # key -> exts whose data runs past the end
    truncated: bool = False
    last_key: str | None = None  # key of the last member header read (the sample in progress at a cut)
    unreadable: str | None = None  # why the tar could not be opened at all


def index_path(shard: str | os.PathLike) -> Path:
    return Path(shard).with_suffix(INDEX_SUFFIX)


def read_index(shard: str | os.PathLike) -> list[str] | None:
    """Sorted keys the shard's index lists as present (status "success"); None without an index."""
    path = index_path(shard)
    if not path.is_file():
        return None
    import pandas as pd

    try:
        frame = pd.read_parquet(path, columns=["key", "status"])
    except Exception as exn:
        raise ValueError(f"shard index {path} is unreadable ({exn}); delete it or rebuild the shard") from exn
    return sorted(frame.loc[frame["status"] == "success", "key"].astype(str))


def write_index(shard: str | os.PathLike, keys: Iterable[str]) -> Path:
    """Write ``<shard>.parquet`` listing ``keys`` with status "success" (atomically)."""
    import pandas as pd

    path = index_path(shard)
    frame = pd.DataFrame({"key": sorted(keys)}, dtype=str)
    frame["status"] = "success"
    with atomic_path(path, suffix=INDEX_SUFFIX) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def scan_tar(path: str | os.PathLike) -> TarScan:
    """Members of ``path`` by key from its headers; see the module docstring."""
    from webdataset.tariterators import base_plus_ext

    scan = TarScan()
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as exn:
        scan.unreadable = str(exn)
        return scan
    with f:
        try:
            tar = tarfile.open(fileobj=f, mode="r:")
        except (tarfile.TarError, EOFError, OSError) as exn:
            scan.unreadable = str(exn) or type(exn).__name__
            return scan
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, EOFError, OSError):
                scan.truncated = True
                break
            if info is None:
                break
            tar.members = []  # headers are kept here, not in tarfile's list
            if not info.isreg():
                continue
            prefix, suffix = base_plus_ext(info.name)
            if prefix is None or prefix.startswith("__"):  # webdataset metadata members
                continue
            scan.last_key = prefix
            if info.offset_data + info.size > size:
                scan.cut.setdefault(prefix, set()).add(suffix.lower())
            else:
                scan.members.setdefault(prefix, {})[suffix.lower()] = (info.offset_data, info.size)
        if not scan.truncated:
            f.seek(tar.offset)
            tail = f.read(END_OF_ARCHIVE)
            scan.truncated = len(tail) < END_OF_ARCHIVE or tail.count(0) != END_OF_ARCHIVE
    return scan


def read_members(f: BinaryIO, members: dict[str, tuple[int, int]]) -> dict[str, bytes]:
    """The bytes of one sample's members (ext -> data) from the open tar ``f``, by seeking to each."""
    out = {}
    for ext, (offset, size) in sorted(members.items()):
        f.seek(offset)
        out[ext] = f.read(size)
    return out


def write_indexed_shards(
    out_dir: str | os.PathLike, samples: Iterable[dict[str, bytes]], *, samples_per_shard: int
) -> Iterator[tuple[str, list[str]]]:
    """Write ``samples`` (dicts with ``__key__``) into ``out_dir/000000.tar``, ... with an index each.

    Yields (shard name, keys) per finished shard. Tars have reproducible headers (mtime 0).
    """
    import webdataset as wds

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shard, keys, sink = 0, [], None

    def close():
        sink.close()
        name = f"{shard:06d}.tar"
        write_index(out_dir / name, keys)
        return name, list(keys)

    for sample in samples:
        if sink is None:
            sink = wds.TarWriter(str(out_dir / f"{shard:06d}.tar"), encoder=False, mtime=0)
        sink.write(sample)
        keys.append(sample["__key__"])
        if len(keys) == samples_per_shard:
            yield close()
            shard, keys, sink = shard + 1, [], None
    if sink is not None:
        yield close()
