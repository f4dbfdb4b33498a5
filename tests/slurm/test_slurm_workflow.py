"""The tiny preset through ``snakemake --profile slurm`` on the real cluster, with an orchestrator
crash in the middle: Snakemake (and every rule process it started) is killed while an alignment
job trains; the restarted Snakemake re-attaches to that job instead of submitting it again. The
tiny preset packs its probe jobs (``aloe.launch.pack``), so packs run here too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aloe.config import load_config
from aloe.launch.record import read_record_file

ROOT = Path(__file__).resolve().parents[2]
STAGE_OF_RULE = {  # every rule that launches a job, and the config resource block it uses
    "teacher": "teacher", "download_alignment_set": "data", "alignment_subset": "data", "prepare_eval_dataset": "data",
    "align_run": "align", "baseline_run": "align", "features": "features", "linear_probe": "probe",
    "knn": "probe", "zero_shot": "probe", "dense_probe": "probe", "gridpg": "explain", "deletion": "explain",
    "explanation_panels": "explain",
}
GPU_STAGES = {"align", "features", "probe", "explain"}


def _snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--profile", "slurm", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
            "--configfile", str(workdir / "config.yaml"), str(workdir / "cluster.yaml"), "--config", "preset=tiny",
            "--cores", "4", *args]


def _records(workdir: Path) -> dict[str, tuple[Path, object]]:
    out = {}
    for path in (workdir / "results" / "jobs").rglob("records/*.job.json"):
        record = read_record_file(path)
        out[record.output] = (path, record)
    return out


def _running_alignment(workdir: Path, slurm) -> str | None:
    """The id of an ALOE alignment job that SLURM runs and that has begun training."""
    for path in (workdir / "results" / "jobs" / "align").glob("records/*.job.json"):
        record = read_record_file(path)
        if "/main/" not in record.output or record.state != "submitted":
            continue
        # Training writes into runs/<digest of settings and data>/ beside the workflow's result.
        started = [m for m in Path(record.output).parent.glob("runs/*/metrics.jsonl") if m.read_text().strip()]
        if started:
            state = slurm.run("squeue", "-h", "-j", record.job_id, "-o", "%T", check=False).strip()
            if state == "RUNNING":
                return record.job_id
    return None


@pytest.fixture(scope="module")
def crashed_and_resumed(slurm, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_slurm")
    (workdir / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    # What an admin sets for the cluster: the partition and account every job is charged to.
    # Longer ALOE runs (300 steps instead of 20) leave time to kill Snakemake mid-training.
    (workdir / "cluster.yaml").write_text(yaml.safe_dump({"tiny": {"cluster": {"partition": "main", "account": "aloe"},
                                                                   "alignment": {"total_steps": 300}}}))
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    # The cluster is shared with the other drills of this session: their jobs are not this DAG's.
    earlier = {row["JobID"] for row in slurm.sacct(fields="JobID")}
    with open(workdir / "first.log", "wb") as log:
        first = subprocess.Popen(_snakemake_cmd(workdir), cwd=ROOT, env=env, stdout=log, stderr=log,
                                 start_new_session=True)
    deadline, killed = time.monotonic() + 1200, None
    while killed is None:
        assert first.poll() is None, (workdir / "first.log").read_text()[-4000:]
        assert time.monotonic() < deadline, "no alignment job ever ran"
        killed = _running_alignment(workdir, slurm)
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the login session dies: Snakemake and all its rule processes
    first.wait()
    assert slurm.run("squeue", "-h", "-j", killed, "-o", "%T", check=False).strip() == "RUNNING"
    subprocess.run(_snakemake_cmd(workdir, "--unlock"), cwd=ROOT, env=env, check=True, capture_output=True)
    second = subprocess.run(_snakemake_cmd(workdir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=2400)
    (workdir / "second.log").write_text(second.stdout + second.stderr)
    assert second.returncode == 0, (second.stdout + second.stderr)[-6000:]
    return workdir, killed, earlier


def test_tiny_dag_ran_through_sbatch_with_the_configured_resources(slurm, crashed_and_resumed):
    workdir, _, _ = crashed_and_resumed
    t2 = pd.read_csv(workdir / "results" / "tables" / "table2.csv")
    assert set(t2[t2["source"] == "measured"]["variant"]) == {"teacher", "bcosification", "aloe"}
    records = [r for _, r in _records(workdir).values()]
    assert all(r.cluster == "slurm" and r.state == "succeeded" for r in records)
    rows = {row["JobID"]: row for row in slurm.sacct(fields="JobID,JobName,Partition,Account,State,Timelimit,AllocTRES")
            if row["JobName"].startswith("aloe.")}
    stages = set()
    cfg = load_config(ROOT / "config.yaml")["tiny"]["resources"]
    for r in records:
        row = rows[r.job_id]
        rule = row["JobName"].removeprefix("aloe.")
        stage = rule.removeprefix("pack.") if rule.startswith("pack.") else STAGE_OF_RULE[rule]  # a mixed pack
        stages.add(stage)
        limit = int(cfg[stage]["timeout_min"])
        assert (row["Partition"], row["Account"], row["State"]) == ("main", "aloe", "COMPLETED"), row
        assert row["Timelimit"] == f"00:{limit:02d}:00" and f"mem={cfg[stage]['mem_gb']}G" in row["AllocTRES"], row
        assert ("gres/gpu=1" in row["AllocTRES"]) == (stage in GPU_STAGES), row
    assert stages == {"teacher", "data", "align", "features", "probe", "explain"}
    # the probe stage is packed in the tiny preset: its outputs share allocations of up to 5 jobs
    # (1 min expected each, at most half the 10-min limit)
    probes = [r for r in records if r.pack is not None]
    assert probes and all("/jobs/probe" in r.folder and r.pack["size"] <= 5 for r in probes)
    assert len({r.job_id for r in probes}) < len(probes)


def test_restarted_snakemake_reattached_and_each_stage_ran_one_job(slurm, crashed_and_resumed):
    workdir, killed, earlier = crashed_and_resumed
    records = _records(workdir)
    (output,) = [out for out, (_, r) in records.items() if r.job_id == killed]
    record = records[output][1]
    assert record.state == "succeeded" and record.attempt == 1 and record.history == []
    run_dir = Path(output).relative_to(workdir / "results").parent  # align/<teacher>/main/lr<lr>
    rule_log = workdir / "results" / "logs" / f"{run_dir}.log"
    assert f"re-attached to job {killed}" in rule_log.read_text()
    assert json.loads(Path(output).read_text())["step"] > 0
    # Exactly one SLURM job per launched output: nothing was submitted twice, nothing lost track of.
    # (Jobs that finished while Snakemake was down had their outputs removed by the restarted
    # Snakemake; their rules put back the hard links the jobs kept instead of running them again.)
    # Packed outputs share their pack's job: one job per unpacked output and per pack.
    jobs = [row for row in slurm.sacct(fields="JobID,JobName,State") if row["JobID"] not in earlier]
    packs = {r.job_id: r.pack["size"] for _, r in records.values() if r.pack}
    assert len(jobs) == len({r.job_id for _, r in records.values()}) == len(records) - sum(packs.values()) + len(
        packs), jobs
    assert sum(1 for _, r in records.values() if r.pack) == sum(packs.values())  # every pack's items all recorded
    assert all(r.history == [] for _, r in records.values()), [r for _, r in records.values() if r.history]
    assert not list((workdir / "results" / "jobs").glob("*/kept/*"))  # cleaned up once outputs are in place
