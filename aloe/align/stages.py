"""Workflow entry points of the alignment stage: one training run, LR selection, baselines.

Each function takes paths and config values as keyword arguments. Training runs are built as
:class:`AlignJob` instances (submitit-checkpointable), so on SLURM a preempted or timed-out run
requeues itself and resumes from its own checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from aloe.align.config import TrainConfig
from aloe.align.job import AlignJob
from aloe.align.sweep import select_best_run
from aloe.align.train import RESUME_MAY_CHANGE
from aloe.depths import resolve_depths
from aloe.io import atomic_dir, read_json, write_json

def shard_files(directory: str | os.PathLike) -> list[str]:
    files = sorted(str(p) for p in Path(directory).glob("*.tar"))
    if not files:
        raise FileNotFoundError(f"no webdataset shards (*.tar) in {directory}")
    return files


def alignment_job(result: str | os.PathLike, *, teacher: str, teacher_depth: int, b: float, stem: str,
                  train: Mapping[str, Any], shards: str, heldout_shards: Optional[str] = None,
                  train_keys: Optional[str] = None, depths: Any = "default",
                  bcos_form: str = "cosine") -> AlignJob:
    """The checkpointable job of one alignment (or baseline) run writing ``<run dir>/result.json``.

    ``shards`` / ``heldout_shards`` are shard folders; ``train`` holds the remaining TrainConfig
    keys. ``depths`` (the config's integers and symbols, ``aloe.depths``) is resolved against
    ``teacher_depth`` (config ``teachers.<name>.depth``, which the teacher stage checks against the
    loaded teacher), so that the run folder's digest names blocks, not symbols; ``"default"``
    stays ``None`` there (the objective's default). The objective resolves the depths again
    against the student's real block count, and rejects a depth the model lacks. ``bcos_form``:
    the student's B-cos layers (``aloe.bcos.linear.FORMS``; config ``baselines.bcos_form``).
    """
    cfg = dict(train)
    blocks = None if depths == "default" else resolve_depths(depths, teacher_depth)
    cfg.update(shards=shard_files(shards), depths=blocks)
    if heldout_shards is not None:
        cfg["heldout_shards"] = shard_files(heldout_shards)
    if train_keys is not None:
        cfg["train_keys"] = str(train_keys)
    job = {"teacher": str(teacher), "b": b, "stem": stem, "bcos_form": bcos_form, "train": cfg,
           "data": data_fingerprint([shards, heldout_shards, train_keys])}
    cfg.update(out_dir=str(run_folder(result, job)), retrain_finished=True)
    return AlignJob(job, result=str(result))


def data_fingerprint(paths: Sequence[str | os.PathLike | None]) -> str:
    """sha256 over what defines a run's data: each shard folder's tar names and sizes and the
    content of keys files (one sorted key per line). Re-downloaded, re-split or re-subset data
    gives another fingerprint, hence another run folder; reading it costs no pass over the images.
    Metadata that differs between identical downloads (img2dataset's parquet with the server's
    URLs, the summary's temp paths) stays out, so identical data finds the same folder."""
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.suffix == ".txt":
                digest.update(f"{f.name}\0".encode() + f.read_bytes())
            elif f.suffix == ".tar":
                digest.update(f"{f.name}\0{f.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def run_folder(result: str | os.PathLike, job: Mapping[str, Any]) -> Path:
    """``<folder of result>/runs/<digest of the run's settings>``.

    A changed setting (loss weight, steps, data, ...) trains in a fresh folder instead of
    resuming a checkpoint made with other settings; the same settings find their own folder
    again, so a preempted or restarted run resumes. Settings that may change on resume
    (``RESUME_MAY_CHANGE``: logging, checkpoint interval, device) do not enter the digest.
    """
    train = {k: v for k, v in TrainConfig.from_dict({**job["train"], "out_dir": "."}).to_dict().items()
             if k not in RESUME_MAY_CHANGE and k != "out_dir"}
    settings = json.dumps({**job, "train": train}, sort_keys=True, default=str)
    return Path(result).parent / "runs" / hashlib.sha256(settings.encode()).hexdigest()[:12]


def run_dir_of(run_result: str | os.PathLike) -> Path:
    """The run folder a run's ``result.json`` points to (older results: the folder holding it)."""
    return Path(read_json(run_result).get("run_dir", Path(run_result).parent))


def _install(out_dir: Path, student_dir: Path, record: dict[str, Any]) -> None:
    """Copy ``student_dir`` to ``out_dir`` through a temp folder, with ``selection.json`` beside it."""
    with atomic_dir(out_dir) as tmp:
        shutil.copytree(student_dir, tmp, dirs_exist_ok=True)
        write_json(tmp / "selection.json", record)


def select_backbone(out_dir: str | os.PathLike, *, run_results: Sequence[str]) -> dict[str, Any]:
    """Pick the run with the lowest held-out loss and install its student as the backbone ``out_dir``
    (``selection.json`` records the losses that were compared)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    compared = out_dir.with_name(f".{out_dir.name}.selection.json")
    record = select_best_run([run_dir_of(r) for r in run_results], compared)
    compared.unlink()
    _install(out_dir, Path(record["selected"]) / "student", record)
    return record


def install_student(out_dir: str | os.PathLike, *, run_result: str) -> dict[str, Any]:
    """Install a single run's student (a baseline, which has no LR sweep) as the backbone ``out_dir``."""
    run = run_dir_of(run_result)
    record = {"selected": str(run), "result": read_json(run_result)}
    _install(Path(out_dir), run / "student", record)
    return record


__all__ = [
    "alignment_job", "data_fingerprint", "install_student", "run_align_run", "run_baseline_run", "run_dir_of",
    "run_folder", "run_install_baseline", "run_select_alignment", "select_backbone", "shard_files",
]


# The stages of workflow/rules/align.smk: rule X calls run_X. A baseline trains like an ALOE run
# (its objective and data come in ``train``); both are the same checkpointable job.
run_align_run = alignment_job
run_baseline_run = alignment_job
run_select_alignment = select_backbone
run_install_baseline = install_student
