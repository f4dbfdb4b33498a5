"""Reading webdataset shards one at a time, in sample-key order, with every damaged sample counted.

Order. A shard is read through a scan of its tar headers (``aloe.data.shard_index``): samples
come out sorted by key, not in the order they were stored. img2dataset stores samples in the
order its download threads finish, which differs between runs with identical bytes per key;
reading by key makes every consumer (training, held-out evaluation, subsets, evaluation
features) see the same sequence whatever the download timing. Only one sample is in memory at
a time (its members are read by seeking).

Damage. The shard's own index (``<shard>.parquet``: img2dataset's, or the one our writers add)
says which keys it must hold. Every listed key that is absent (``missing_sample``: e.g. the
tar was cut before it, at a member boundary or not), cut short (``incomplete_sample``), without
an image (``missing_image``) or without a required member (``missing_<ext>``) is recorded in a
``SkipCounter`` under (shard, key), once. A shard that cannot be opened loses all its listed
keys (``unreadable_shard``). Shard-level facts go to the counter's notes: ``truncated_tar``,
``unreadable_shard``, ``no_index`` (no index file: losses from a cut cannot be counted) and
``unindexed_samples`` (the tar holds keys its index does not list; they are read).

``keys``: only samples whose key is in this set are read and counted (a split or subset).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator

from aloe.data.damage import SkipCounter
from aloe.data.shard_index import read_index, read_members, scan_tar
from aloe.data.shards import IMAGE_EXTENSIONS

__all__ = ["SkipCounter", "image_extension", "iter_shard", "resolve_shards", "shard_keys"]


def resolve_shards(shards: "str | os.PathLike | Iterable[str | os.PathLike]", key: str = "shards") -> list[str]:
    """Sorted local shard paths of config key ``key``: a folder (its ``*.tar`` files), a path or
    brace pattern (``train-{00000..00009}.tar``), or a list of those; fails clearly if the list is
    empty, names a remote shard or a file that is missing or unreadable."""
    specs = [shards] if isinstance(shards, (str, os.PathLike)) else list(shards)
    if len(specs) == 1 and Path(specs[0]).is_dir():
        found = sorted(str(p) for p in Path(specs[0]).glob("*.tar"))
        if not found:
            raise FileNotFoundError(f"config key '{key}': no *.tar shards in {specs[0]}")
        return found
    from braceexpand import braceexpand  # webdataset's dependency (the workflow extra)

    out = sorted(s for spec in specs for s in braceexpand(str(spec)))
    if not out:
        raise ValueError(f"config key '{key}': the shard list is empty")
    for s in out:
        if "://" in s or s.startswith("pipe:"):
            raise ValueError(f"config key '{key}': shard {s} is not a local file; samples are read in key order "
                             "through the tar's headers, which needs a local (seekable) copy")
        if not os.path.isfile(s) or not os.access(s, os.R_OK):
            raise FileNotFoundError(f"config key '{key}': shard {s} does not exist or is not readable")
    return out


def image_extension(sample: dict[str, Any]) -> str | None:
    for ext in IMAGE_EXTENSIONS:
        if ext in sample:
            return ext
    return None


def _missing(exts: Collection[str], require: tuple[str, ...]) -> str | None:
    if image_extension(dict.fromkeys(exts)) is None:
        return "missing_image"
    for ext in require:
        if ext not in exts:
            return f"missing_{ext}"
    return None


def iter_shard(
    path: str | Path,
    counter: SkipCounter,
    *,
    require: tuple[str, ...] = (),
    keys: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the complete samples of one shard, sorted by key, as {"__key__", "__shard__", ext: bytes}.

    A sample needs an image member (any of ``IMAGE_EXTENSIONS``) and every extension in
    ``require``. Everything lost is recorded in ``counter`` when the shard is opened (see the
    module docstring), so a reader that stops early has still counted the whole shard's damage.
    """
    shard = Path(path).name
    listed = read_index(path)
    scan = scan_tar(path)
    wanted = (lambda k: True) if keys is None else (lambda k: k in keys)
    present = {k for k in scan.members if wanted(k)}
    expected = {k for k in listed if wanted(k)} if listed is not None else present | {k for k in scan.cut if wanted(k)}
    if listed is None:
        counter.note("no_index", shard)
    if scan.unreadable is not None:
        counter.note("unreadable_shard", shard)
        for key in expected:
            counter.add("unreadable_shard", shard, key)
        counter.expect(shard, len(expected))
        return
    if scan.truncated:
        counter.note("truncated_tar", shard)
    if present - expected:
        counter.note("unindexed_samples", shard)
    counter.expect(shard, len(expected | present))
    good = []
    for key in sorted(expected | present):
        if key in scan.cut:
            counter.add("incomplete_sample", shard, key)
        elif key not in present:
            counter.add("missing_sample", shard, key)
        elif (reason := _missing(scan.members[key], require)) is not None:
            cut_here = scan.truncated and key == scan.last_key  # the cut fell between its members
            counter.add("incomplete_sample" if cut_here else reason, shard, key)
        else:
            good.append(key)
    with open(path, "rb") as f:
        for key in good:
            yield {"__key__": key, "__shard__": shard, **read_members(f, scan.members[key])}


def shard_keys(path: str | Path) -> list[str]:
    """Sorted keys of the samples of one shard that have an image, from tar headers only (fast);
    raises on a damaged shard."""
    scan = scan_tar(path)
    if scan.unreadable is not None:
        raise ValueError(f"shard {path} is damaged: {scan.unreadable}")
    if scan.truncated or scan.cut:
        raise ValueError(f"shard {path} is damaged: truncated (samples cut: {sorted(scan.cut)})")
    return sorted(k for k, exts in scan.members.items() if image_extension(dict.fromkeys(exts)) is not None)
