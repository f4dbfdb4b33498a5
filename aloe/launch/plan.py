"""A pre-flight plan: what a Snakemake target would ask of the cluster, per stage (resource block).

    python -m aloe.launch plan [TARGET ...] [--config preset=paper] [--configfile=F ...] [--csv PATH]

Jobs come from the workflow's DAG (``aloe.launch.dag``: the jobs ``snakemake -n`` would run with
the same targets and config); each job-running rule names its resource block in
``params.launch``. Per stage: jobs; sbatch submissions; allocations; GPUs per job (nodes x
gpus_per_node); requested GPU-hours (timeout_min / 60 x GPUs x allocations: what the queue
books); expected GPU-hours where a measured throughput exists (``aloe.launch.estimate``:
alignment and feature caching). A stage without packing submits one job per output. A packed
stage (``pack_work_min``, ``aloe.launch.pack``) runs packs of at most ``pack_max_work_min``
minutes of expected work per allocation, and the packs of one broker round are one submission:
the plan assumes that a stage's jobs are ready together (true for the jobs of the teachers, a
best case for students that finish at different times). It also prints the bound for the other
extreme, every student ready at its own time (one round per student and stage; the teachers are
ready together at the start). Rules without a
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
    wave: tuple = ()  # the wildcards but the dataset: the jobs of one backbone (of all teachers)


def planned_jobs(snakemake_jobs: Iterable[Any]) -> list[PlannedJob]:
    from aloe.launch.dag import job_call

    planned = []
    for job in snakemake_jobs:
        call = job_call(job)
        fn, kwargs, launch = call if call is not None else (None, {}, None)
        wildcards = dict(job.wildcards.items())
        # the teachers are ready at the start (no alignment before them): one wave for all of them
        drop = ("dataset", "teacher") if wildcards.get("variant") == "teacher" else ("dataset",)
        wave = tuple(sorted((k, v) for k, v in wildcards.items() if k not in drop))
        planned.append(PlannedJob(job.rule.name, launch["stage"] if launch else None, fn, kwargs,
                                  wildcards.get("teacher"), wave))
    return planned


@dataclasses.dataclass
class Bound:
    """Submissions and GPU allocations when every backbone is ready at its own time."""

    submissions: int = 0
    gpu_allocations: int = 0
    packed: list[str] = dataclasses.field(default_factory=list)  # the packed stages


def plan(config: Mapping[str, Any], jobs: Iterable[PlannedJob], bound: Bound | None = None) -> list[StageRow]:
    """One row per stage with jobs (in the preset's resources order, ``local`` last), then ``total``.
    ``bound``, when given, is filled with the one-round-per-backbone figures."""
    from aloe.launch.estimate import job_gpu_hours
    from aloe.launch.pack import max_work_min, pack_bins, packed
    from aloe.pipeline import job_minutes, stage_resources

    study = config[config["preset"]]
    submits = study["launcher"]["executor"] in ("slurm", "auto")
    rows = {name: StageRow(name) for name in [*study["resources"], LOCAL]}
    waves: dict[str, dict[tuple, list[float]]] = {}  # packed stage -> backbone -> minutes of each job
    bound = bound if bound is not None else Bound()
    for job in jobs:
        row = rows[job.stage or LOCAL]
        row.jobs += 1
        row.rules[job.rule] = row.rules.get(job.rule, 0) + 1
        if job.stage is None:
            continue
        resources = stage_resources(config, job.stage)
        gpus = job_claim(resources)["gpus"]
        row.gpus_per_job = gpus
        hours_limit = float(resources.get("timeout_min", DEFAULT_TIMEOUT_MIN)) / 60 * gpus
        if submits and not runs_on_submit_host(resources):
            row.where = "cluster"
            if packed(resources, "slurm"):  # the plan is that of a SLURM run
                minutes = job_minutes(config, job.fn or "", job.kwargs, {"teacher": job.teacher or ""}, resources)
                waves.setdefault(job.stage, {}).setdefault(job.wave, []).append(minutes)
            else:
                row.submissions += 1
                row.allocations += 1
                bound.submissions += 1
                bound.gpu_allocations += bool(gpus)
                row.requested_gpu_hours += hours_limit
        else:
            row.requested_gpu_hours += hours_limit
        if gpus and row.expected_gpu_hours is not None:
            source = study["teachers"].get(job.teacher, {}).get("source") if job.teacher else None
            hours = job_gpu_hours(job.fn or "", job.kwargs, source)
            row.expected_gpu_hours = None if hours is None else row.expected_gpu_hours + hours
    bound.packed = [stage for stage in rows if stage in waves]
    for stage, by_backbone in waves.items():
        row, resources = rows[stage], stage_resources(config, stage)
        limit = max_work_min(resources)
        allocations = len(pack_bins([m for ms in by_backbone.values() for m in ms], limit))
        row.submissions, row.allocations = 1, allocations
        row.requested_gpu_hours += allocations * float(resources.get("timeout_min", DEFAULT_TIMEOUT_MIN)) / 60 * (
            row.gpus_per_job or 0)
        bound.submissions += len(by_backbone)
        bound.gpu_allocations += sum(len(pack_bins(ms, limit)) for ms in by_backbone.values()) * bool(row.gpus_per_job)
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


def to_text(rows: list[StageRow], title: str, bound: Bound | None = None) -> str:
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
    if bound is not None and bound.packed:
        lines.append(f"packed: {', '.join(bound.packed)}, assuming each stage's jobs are ready together; if every "
                     f"student is ready at its own time: {bound.submissions:,} submissions, "
                     f"{bound.gpu_allocations:,} GPU allocations.")
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
    bound = Bound()
    rows = plan(config, planned, bound)
    what = " ".join(targets) if targets else "the whole study (default target)"
    text = to_text(rows, f"Plan of preset {config['preset']}: {what}", bound)
    if csv_path is not None:
        write_text(csv_path, to_csv(rows))
    return text
