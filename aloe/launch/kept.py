"""Outputs a job keeps for a restarted workflow: hard links in the job folder.

Snakemake removes the outputs of a rule that was interrupted before it runs the rule again. If
the orchestrator died while a job ran and the job finished before the restart, its outputs are
removed although they are complete. So the job, once its function has returned, hard-links its
outputs into ``<log_dir>/kept/<call key>/`` (no copy, same filesystem) and marks the folder
complete; the restarted rule puts the links back and, when the job's record says it succeeded,
uses them without running the job again.

The folders stay until the workflow ends (``drop_all_kept`` from the Snakefile's ``onsuccess`` and
``onerror``), not only until the rule returns: between a rule's return and Snakemake recording the
job, a killed Snakemake still treats the outputs as incomplete and removes them on restart.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)
COMPLETE = "complete"


def _link_tree(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=os.link)
    else:
        os.link(src, dst)


def keep_outputs(outputs: Sequence[str | os.PathLike], keep_dir: str | os.PathLike) -> None:
    """Hard-link every output into ``keep_dir`` (built beside it, then renamed into place)."""
    keep_dir = Path(keep_dir)
    tmp = keep_dir.with_name(keep_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, out in enumerate(outputs):
        if Path(out).exists():
            _link_tree(Path(out), tmp / str(i))
    (tmp / COMPLETE).write_text("\n".join(str(o) for o in outputs))
    shutil.rmtree(keep_dir, ignore_errors=True)
    os.replace(tmp, keep_dir)


def restore_outputs(outputs: Sequence[str | os.PathLike], keep_dir: str | os.PathLike) -> bool:
    """Put kept outputs back where they are missing; True when every output exists afterwards."""
    keep_dir = Path(keep_dir)
    if not (keep_dir / COMPLETE).exists():
        return False
    for i, out in enumerate(outputs):
        out, kept = Path(out), keep_dir / str(i)
        if not out.exists() and kept.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            _link_tree(kept, out)
            log.info("restored %s, kept by a job that finished while no workflow waited for it", out)
    return all(Path(o).exists() for o in outputs)


def drop_kept(keep_dir: str | os.PathLike) -> None:
    shutil.rmtree(keep_dir, ignore_errors=True)


def drop_all_kept(jobs_root: str | os.PathLike) -> int:
    """Remove every ``<jobs_root>/<stage>/kept/<call>`` folder (the workflow has recorded its jobs);
    returns how many were removed."""
    folders = sorted(Path(jobs_root).glob("*/kept/*"))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return len(folders)
