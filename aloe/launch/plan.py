"""A pre-flight plan: what a Snakemake target would ask of the cluster, per stage (resource block).

    python -m aloe.launch plan [TARGET ...] [--config preset=paper] [--configfile=F ...] [--csv PATH]

Jobs come from the workflow's DAG (``aloe.launch.dag``: the jobs ``snakemake -n`` would run with
the same targets and config); each job-running rule names its resource block in
``params.launch``. Per stage: jobs; sbatch submissions (one per job: nothing is packed today);
allocations (one per submission); GPUs per job (nodes x gpus_per_node); requested GPU-hours
(timeout_min / 60 x GPUs x jobs: what the queue books); expected GPU-hours where a measured
throughput exists (``aloe.launch.estimate``: alignment and feature caching). Rules without a
resource block run on the submit host and are counted under ``local``. A stage submits nothing
when it runs on the submit host (``where: submit_host``) or the preset's ``launcher.executor`` is
``local`` or ``inprocess``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any, Iterable, Mapping

from aloe.io import write_text
from aloe.launch.resources import DEFAULT_TIMEOUT_MIN, job_claim, runs_on_submit_host

COLUMNS = ("stage", "jobs", "submissions", "allocations", "gpus_per_job", "requested_gpu_hours",
           "expected_gpu_hours")
LOCAL = "local"


@dataclasses.dataclass
class StageRow:
    stage: str
    jobs: int = 0
    submissions: int = 0
    allocations: int = 0
    gpus_per_job: int | None = 0
    requested_gpu_hours: float = 0.0
    expected_gpu_hours: float | None = 0.0  # None: no measured throughput for some job of the stage
    rules: dict[str, int] = dataclasses.field(default_factory=dict)
    where: str = "submit host"  # "cluster" once a job of the stage is submitted


@dataclasses.dataclass
class PlannedJob:
    """What the plan needs of one Snakemake job."""

    rule: str
    stage: str | None  # resource block, None for a rule that runs on the submit host
    fn: str | None = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    teacher: str | None = None  # the {teacher} wildcard


def planned_jobs(snakemake_jobs: Iterable[Any]) -> list[PlannedJob]:
    from aloe.launch.dag import job_call

    planned = []
    for job in snakemake_jobs:
        call = job_call(job)
        fn, kwargs, launch = call if call is not None else (None, {}, None)
        planned.append(PlannedJob(job.rule.name, launch["stage"] if launch else None, fn, kwargs,
                                  dict(job.wildcards.items()).get("teacher")))
    return planned


def plan(config: Mapping[str, Any], jobs: Iterable[PlannedJob]) -> list[StageRow]:
    """One row per stage with jobs (in the preset's resources order, ``local`` last), then ``total``."""
    from aloe.launch.estimate import job_gpu_hours
    from aloe.pipeline import stage_resources

    study = config[config["preset"]]
    submits = study["launcher"]["executor"] in ("slurm", "auto")
    rows = {name: StageRow(name) for name in [*study["resources"], LOCAL]}
    for job in jobs:
        row = rows[job.stage or LOCAL]
        row.jobs += 1
        row.rules[job.rule] = row.rules.get(job.rule, 0) + 1
        if job.stage is None:
            continue
        resources = stage_resources(config, job.stage)
        gpus = job_claim(resources)["gpus"]
        row.gpus_per_job = gpus
        if submits and not runs_on_submit_host(resources):
            row.submissions += 1
            row.allocations += 1
            row.where = "cluster"
        row.requested_gpu_hours += float(resources.get("timeout_min", DEFAULT_TIMEOUT_MIN)) / 60 * gpus
        if gpus and row.expected_gpu_hours is not None:
            source = study["teachers"].get(job.teacher, {}).get("source") if job.teacher else None
            hours = job_gpu_hours(job.fn or "", job.kwargs, source)
            row.expected_gpu_hours = None if hours is None else row.expected_gpu_hours + hours
    kept = [r for r in rows.values() if r.jobs]
    total = StageRow("total", jobs=sum(r.jobs for r in kept), submissions=sum(r.submissions for r in kept),
                     allocations=sum(r.allocations for r in kept), gpus_per_job=None,
                     requested_gpu_hours=sum(r.requested_gpu_hours for r in kept),
                     expected_gpu_hours=sum(r.expected_gpu_hours or 0.0 for r in kept))
    return [*kept, total]


def _hours(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def to_csv(rows: list[StageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        gpus = "" if r.gpus_per_job is None else r.gpus_per_job
        writer.writerow([r.stage, r.jobs, r.submissions, r.allocations, gpus,
                         _hours(r.requested_gpu_hours, 2), _hours(r.expected_gpu_hours, 2)])
    return out.getvalue()


def to_text(rows: list[StageRow], title: str) -> str:
    """The table ``plan`` prints: the CSV's columns, thousands separators, and the rules per stage."""
    head = ["stage", "runs on", "jobs", "submissions", "allocations", "GPUs/job", "requested GPU-h", "expected GPU-h",
            "rules"]
    body = [[r.stage, "" if r.stage == "total" else r.where, f"{r.jobs:,}", f"{r.submissions:,}", f"{r.allocations:,}",
             "" if r.gpus_per_job is None else str(r.gpus_per_job), f"{r.requested_gpu_hours:,.0f}",
             "n/a" if r.expected_gpu_hours is None else f"{r.expected_gpu_hours:,.0f}",
             ", ".join(f"{k}: {v}" for k, v in sorted(r.rules.items()))] for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head) - 1)]
    lines = [title]
    for line in [head, *body]:
        cells = [c.ljust(w) for c, w in zip(line[:2], widths)] + [c.rjust(w) for c, w in zip(line[2:-1], widths[2:])]
        lines.append("  ".join(cells + [line[-1]]).rstrip())
    missing = [r.stage for r in rows[:-1] if r.expected_gpu_hours is None]
    gpu_allocations = sum(r.allocations for r in rows[:-1] if r.gpus_per_job)
    largest = max((r.gpus_per_job or 0 for r in rows[:-1]), default=0)
    lines.append(f"GPU allocations: {gpu_allocations:,}; largest job: {largest} GPUs (a `--resources gpus=N` cap "
                 "below it stops the workflow when that job is ready).")
    if missing:
        lines.append(f"expected GPU-h: no measured throughput for {', '.join(missing)} "
                     "(n/a; the total leaves them out).")
    return "\n".join(lines) + "\n"


def run_plan(targets: list[str], config_entries: list[str], configfiles: list[str], csv_path: Path | None,
             snakefile: str = "Snakefile") -> str:
    """Build the DAG, print the plan; write the CSV if asked. Returns the printed text."""
    from aloe.launch.dag import dag_jobs, parse_config_entries

    with dag_jobs(targets, config=parse_config_entries(config_entries), configfiles=configfiles,
                  snakefile=snakefile) as (config, jobs):
        planned = planned_jobs(jobs)
    rows = plan(config, planned)
    what = " ".join(targets) if targets else "the whole study (default target)"
    text = to_text(rows, f"Plan of preset {config['preset']}: {what}")
    if csv_path is not None:
        write_text(csv_path, to_csv(rows))
    return text
