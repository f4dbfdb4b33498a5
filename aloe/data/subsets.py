"""Deterministic key subsets and the held-out validation split of an alignment set.

Every decision is a pure function of (sample key, seed):

- validation: the ``val_size`` keys with the smallest ``key_score(key, seed, "val")``;
- training subset at fraction f: the non-validation keys with
  ``key_score(key, seed, "subset") < f``.

Because the subset threshold only grows with f, the 0.1 % subset is inside the 1 % subset, which
is inside the 10 % one, and a key's membership does not depend on which other keys exist (a
rerun that downloads a slightly different set keeps the same decision for every common key).
Subset sizes are therefore f * N up to binomial noise (about sqrt(f N)), not exact.
Key lists are plain text, one sorted key per line, written atomically; ``splits.json`` (written
last) records the counts.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from aloe.data.shard_index import read_index, write_indexed_shards
from aloe.data.tario import SkipCounter, iter_shard, resolve_shards, shard_keys
from aloe.io import write_json, write_text

SPLITS_FILE = "splits.json"
log = logging.getLogger(__name__)


def key_score(key: str, seed: int, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by (key, seed, purpose)."""
    digest = hashlib.blake2b(f"{purpose}\0{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def list_shard_keys(shard_dir: str | os.PathLike) -> list[str]:
    """Sorted keys of all samples in the ``*.tar`` shards of ``shard_dir``.

    Each shard's index (``NNNNN.parquet``, rows with status "success"; img2dataset's own) is used
    when present, so a damaged shard still contributes every key it should hold (its losses
    are then counted in the split that reads it); otherwise the tar headers are scanned.
    """
    shard_dir = Path(shard_dir)
    tars = sorted(shard_dir.glob("*.tar"))
    if not tars:
        raise FileNotFoundError(f"no *.tar shards in {shard_dir}")
    keys: list[str] = []
    for tar in tars:
        listed = read_index(tar)
        keys.extend(listed if listed is not None else shard_keys(tar))
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate sample keys in {shard_dir}")
    return sorted(keys)


def fraction_name(fraction: float) -> str:
    return f"train_{fraction:g}"


def read_keys(path: str | os.PathLike) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line]


def make_key_splits(
    shard_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    fractions: Iterable[float],
    val_size: int,
    seed: int,
) -> dict[str, Any]:
    """Write ``val.txt``, ``train_<f>.txt`` per fraction and ``splits.json`` into ``out_dir``."""
    fractions = sorted(set(float(f) for f in fractions))
    bad = [f for f in fractions if not 0.0 < f <= 1.0]
    if bad or not fractions:
        raise ValueError(f"subset fractions must lie in (0, 1], got {bad or 'none'} (config key: fractions)")
    keys = list_shard_keys(shard_dir)
    if not 0 <= val_size < len(keys):
        raise ValueError(
            f"val_size={val_size} must be >= 0 and below the {len(keys)} samples in {shard_dir} "
            "(config key: val_size)"
        )
    by_val_score = sorted(keys, key=lambda k: (key_score(k, seed, "val"), k))
    val = set(by_val_score[:val_size])
    train = [k for k in keys if k not in val]
    out_dir = Path(out_dir)
    (out_dir / SPLITS_FILE).unlink(missing_ok=True)
    write_text(out_dir / "val.txt", "".join(f"{k}\n" for k in sorted(val)))
    summary: dict[str, Any] = {
        "seed": seed,
        "num_keys": len(keys),
        "val": {"file": "val.txt", "num_keys": len(val)},
        "subsets": {},
    }
    for fraction in fractions:
        subset = [k for k in train if key_score(k, seed, "subset") < fraction]
        name = fraction_name(fraction)
        write_text(out_dir / f"{name}.txt", "".join(f"{k}\n" for k in subset))
        summary["subsets"][name] = {"fraction": fraction, "file": f"{name}.txt", "num_keys": len(subset)}
    write_json(out_dir / SPLITS_FILE, summary)
    return summary


def materialize_subset(
    shards: str | os.PathLike | Iterable[str | os.PathLike],
    keys_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    samples_per_shard: int,
) -> dict[str, Any]:
    """Copy the samples listed in ``keys_file`` (raw bytes, no re-encoding) into new shards.

    ``shards``: a folder of ``*.tar`` shards or a list of shard paths.

    Small subsets read faster from their own shards than by filtering the full set every epoch.
    Source shards are read in key order, so the subset's shards are the same bytes whatever the
    stored order. Each written shard gets its index. Writes ``subset.json`` last: damaged source
    samples of the subset are counted in it by key (``skipped``), not copied, and listed keys that
    no source shard holds or indexes are counted as ``not_in_shards``.
    """
    wanted = set(read_keys(keys_file))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "subset.json").unlink(missing_ok=True)
    for old in [*out_dir.glob("*.tar"), *out_dir.glob("*.parquet")]:
        old.unlink()
    counter = SkipCounter()
    found: set[str] = set()

    def selected():
        for shard in resolve_shards(shards):
            for sample in iter_shard(shard, counter, keys=wanted):
                sample.pop("__shard__")
                found.add(sample["__key__"])
                yield sample

    for _ in write_indexed_shards(out_dir, selected(), samples_per_shard=samples_per_shard):
        pass
    damaged = {key for _, key in counter.samples}
    not_found = sorted(wanted - found - damaged)
    summary = {"keys_file": str(keys_file), "requested": len(wanted), "written": len(found),
               "skipped": counter.as_dict(), "not_in_shards": len(not_found),
               "not_in_shards_first": not_found[:20]}
    log.info("subset %s: %d of %d requested samples written; %s; %d listed keys in no shard", out_dir,
             len(found), len(wanted), counter.summary("damaged"), len(not_found))
    write_json(out_dir / "subset.json", summary)
    return summary
