"""Submitting through submitit: an executor for a resource block, a clean environment for sbatch,
and the submission of a broker round's packs (``aloe.launch.pack``)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
import shutil
import subprocess
from typing import Any, Iterator, Literal, Mapping

import submitit

from aloe.launch import pack
from aloe.launch.record import JobRecord, now_iso, write_record
from aloe.launch.resources import executor_arguments

ExecutorName = Literal["auto", "slurm", "local", "inprocess"]
log = logging.getLogger(__name__)


def resolve_executor(executor: ExecutorName) -> str:
    if executor == "auto":
        return "slurm" if _slurm_answers() else "inprocess"
    if executor not in ("slurm", "local", "inprocess"):
        raise ValueError(f"executor: expected auto, slurm, local or inprocess, got {executor!r}")
    return executor


def _slurm_answers() -> bool:
    """sbatch and srun are on PATH and ``sinfo`` reaches a controller. Slurm's client tools
    installed without a configured cluster (a laptop, a CI image) do not count as a cluster."""
    if not (shutil.which("sbatch") and shutil.which("srun")):
        return False
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("executor auto: sbatch is on PATH but sinfo failed (%s): running in-process", err)
        return False
    if probe.returncode != 0:
        log.warning("executor auto: sbatch is on PATH but no SLURM controller answers (sinfo: %s): running "
                    "in-process; set launcher.executor to slurm to fail instead", probe.stderr.strip()[:200])
        return False
    return True


def make_executor(resources: Mapping[str, Any], cluster: str, folder: str | os.PathLike) -> submitit.AutoExecutor:
    """An AutoExecutor for ``cluster`` ("slurm" or "local") with ``resources`` applied."""
    ctor, params = executor_arguments(resources, cluster)
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, **ctor)
    executor.update_parameters(**params)
    return executor


@contextlib.contextmanager
def clean_submission_env() -> Iterator[None]:
    """submitit's clean_env (no SLURM_* of an enclosing job leaks into the new one), except
    SLURM_CONF: it only says where the cluster's config lives, and sbatch fails without it on
    sites that set it."""
    keep = {k: os.environ[k] for k in ("SLURM_CONF",) if k in os.environ}
    with submitit.helpers.clean_env():
        os.environ.update(keep)
        try:
            yield
        finally:
            for k in keep:
                os.environ.pop(k, None)



def submit_packs(packs: list[list[pack.PackRequest]], cluster: str, resources: dict[str, Any], folder: Path) -> None:
    """Submit ``packs`` (of one broker group) as one submission (a job array when several), each
    pack one job running its calls in turn (``pack.run_pack``); write every call's job record."""
    res = pack.job_resources(resources)
    names = {r.resources.get("name") for p in packs for r in p}
    res["name"] = names.pop() if len(names) == 1 and None not in names else f"aloe.pack.{folder.name}"
    executor = make_executor(res, cluster, folder)
    work = []
    for members in packs:
        items = []
        for req in members:
            result, item_log = pack.item_files(folder, req.request)
            items.append(pack.PackItem(str(req.call_file), str(result), str(item_log), req.output))
        work.append(items)
    with clean_submission_env():
        if len(work) == 1:
            submitted = [executor.submit(pack.run_pack, work[0])]
        else:
            with executor.batch():
                submitted = [executor.submit(pack.run_pack, items) for items in work]
    for members, items, job in zip(packs, work, submitted):
        for k, (req, item) in enumerate(zip(members, items)):
            record = JobRecord(call=req.call, cluster=cluster, folder=str(executor.folder), job_id=str(job.job_id),
                               num_tasks=job.num_tasks, attempt=len(req.history) + 1, resources=res,
                               submitted_at=now_iso(), history=list(req.history), output=req.output,
                               pack={"request": req.request, "result": item.result, "log": item.log, "index": k,
                                     "size": len(members)})
            write_record(req.output, folder, record)
        log.info("submitted pack job %s: %d call(s), %.1f min of expected work", job.job_id, len(members),
                 sum(r.expected_min for r in members))
