"""``python -m aloe.launch plan``: the pre-flight plan agrees with Snakemake's own dry run, job for
job, and books GPU-hours from the resource blocks of config.yaml."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aloe.config import load_config
from aloe.launch.estimate import estimate
from aloe.launch.plan import COLUMNS, Bound, PlannedJob, plan, to_csv

from snakemake_output import job_counts

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
CONFIG = load_config(ROOT / "config.yaml")  # resolved, as the workflow reads it
# which resource block each job-running rule names (workflow/rules/*.smk, params.launch)
STAGE_RULES = {
    "teacher": ["teacher"],
    "download": [],  # prepare_eval_dataset of torchvision datasets (see expected_jobs)
    "data": ["download_alignment_set", "alignment_subset", "prepare_eval_dataset"],
    "align": ["align_run", "baseline_run"],
    "features": ["features"],
    "probe": ["linear_probe", "knn", "zero_shot", "dense_probe"],
    "explain": ["gridpg", "deletion", "explanation_panels"],
}


def dry_run_counts(*args: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-m", "snakemake", *args, "-n", "--quiet", "rules"], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return job_counts(out.stdout + out.stderr)


def run_plan(tmp_path: Path, *args: str) -> tuple[str, dict[str, dict[str, str]], list[str]]:
    out = subprocess.run([sys.executable, "-m", "aloe.launch", "plan", *args, "--csv", str(tmp_path / "plan.csv")],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "plan.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    return out.stdout, {r["stage"]: r for r in rows}, [r["stage"] for r in rows]


SUBMIT_HOST = ("teacher", "download")  # where: submit_host in the paper preset
PACKED = ("features", "probe", "explain")  # pack_work_min in the paper preset


def expected_jobs(counts: dict[str, int], datasets: list[str]) -> dict[str, int]:
    """Jobs per stage from the dry run's jobs per rule; ``datasets``: those the target prepares
    (torchvision downloads are the ``download`` block's, local copies the ``data`` block's)."""
    jobs = {stage: sum(counts.get(r, 0) for r in rules) for stage, rules in STAGE_RULES.items()}
    specs = CONFIG["paper"]["evaluation"]["datasets"]
    jobs["download"] = sum(specs[d]["source"] == "torchvision" for d in datasets)
    jobs["data"] -= jobs["download"]
    jobs["local"] = sum(counts.values()) - sum(jobs.values())
    return {stage: n for stage, n in jobs.items() if n}


def test_plan_of_the_paper_study_matches_the_dry_run(tmp_path):
    counts = dry_run_counts("--config", "preset=paper")
    text, rows, order = run_plan(tmp_path, "--config", "preset=paper")
    jobs = expected_jobs(counts, list(CONFIG["paper"]["evaluation"]["datasets"]))
    assert (jobs["download"], jobs["data"]) == (8, 1 + 4 + 3)  # 8 torchvision; img2dataset, 4 subsets, 3 manual
    assert order == [*jobs, "total"]  # the resource blocks in config order, local, then total
    assert {s: int(r["jobs"]) for s, r in rows.items() if s != "total"} == jobs
    assert int(rows["total"]["jobs"]) == sum(counts.values()) == 912
    assert jobs["align"] == 52 and jobs["features"] == 263 and jobs["probe"] == 465
    res = CONFIG["paper"]["resources"]
    for stage in STAGE_RULES:
        r, block = rows[stage], res[stage]
        gpus = block.get("nodes", 1) * block.get("gpus_per_node", 0)
        assert block.get("where", "cluster") == ("submit_host" if stage in SUBMIT_HOST else "cluster"), stage
        assert int(r["gpus_per_job"]) == gpus, stage
        allocations = 0 if stage in SUBMIT_HOST else jobs[stage]
        if stage in PACKED:  # one broker round for the stage; packs of at most half the time limit of work
            assert "pack_work_min" in block
            allocations = int(r["allocations"])
            assert int(r["submissions"]) == 1 and allocations < jobs[stage] / 3, stage
        else:
            assert "pack_work_min" not in block
            assert int(r["submissions"]) == int(r["allocations"]) == allocations, stage
        assert float(r["requested_gpu_hours"]) == pytest.approx(block["timeout_min"] / 60 * gpus * allocations), stage
    # 5-min probe jobs (the assumed expected_min) in packs of at most 120 min: 24 per pack
    assert int(rows["probe"]["allocations"]) == -(-465 // 24) == 20
    # 60-min jobs, at most 240 min per pack: 20 GridPG, 20 deletion, the panels
    assert int(rows["explain"]["allocations"]) == -(-41 // 4) == 11
    assert float(rows["align"]["requested_gpu_hours"]) == 52 * 8 * 48
    assert rows["local"]["submissions"] == "0" and rows["local"]["gpus_per_job"] == "0"
    assert int(rows["total"]["submissions"]) == 8 + 52 + 3 == 63  # was 803 without packing
    gpu_allocations = sum(int(rows[s]["allocations"]) for s in ("align", *PACKED))
    assert f"GPU allocations: {gpu_allocations:,};" in text and gpu_allocations <= 150
    assert "if every student is ready at its own time:" in text
    assert float(rows["total"]["requested_gpu_hours"]) == pytest.approx(
        sum(float(rows[s]["requested_gpu_hours"]) for s in STAGE_RULES))
    # expected GPU-hours: the per-job estimate adds up to the study-level one of paper_gpu_hours.py
    by_row = dict((name, hours) for name, _, hours in estimate(CONFIG["paper"]))
    align_rows = [h for name, h in by_row.items() if name.startswith("align")]
    assert float(rows["align"]["expected_gpu_hours"]) == pytest.approx(sum(align_rows), abs=0.01)
    # features: the 190 main-backbone jobs of the estimate plus ablation variants and NYUv2
    assert float(rows["features"]["expected_gpu_hours"]) > by_row["features: every main backbone on the 10 datasets"]
    assert rows["probe"]["expected_gpu_hours"] == rows["explain"]["expected_gpu_hours"] == ""  # no throughput
    assert rows["teacher"]["expected_gpu_hours"] == "0.00"  # CPU jobs: no GPU-hours
    assert "align" in text and "19,968" in text and "align_run: 49, baseline_run: 3" in text
    # the README's admin section shows exactly this plan (regenerate it with the command shown there)
    assert text in (ROOT / "README.md").read_text(), "README.md's plan block is stale"


def test_plan_of_one_table_matches_its_dry_run(tmp_path):
    target = "results/tables/table2.tex"
    counts = dry_run_counts(target, "--config", "preset=paper")
    text, rows, _ = run_plan(tmp_path, target, "--config", "preset=paper")
    jobs = expected_jobs(counts, CONFIG["paper"]["evaluation"]["classification"])
    assert {s: int(r["jobs"]) for s, r in rows.items() if s != "total"} == jobs
    # the three main teachers, each as teacher, B-cosification baseline and ALOE, on the 10 datasets
    assert counts["linear_probe"] == jobs["probe"] == 9 * 10
    assert "explain" not in rows and "knn" not in counts
    assert int(rows["total"]["jobs"]) == sum(counts.values())
    assert text.startswith(f"Plan of preset paper: {target}")


def test_plan_rows_follow_the_resource_blocks():
    config = {"preset": "p", "p": {
        "launcher": {"executor": "slurm"}, "teachers": {"t": {"source": "nowhere/model"}},
        "cluster": {"partition": "gpu"},
        "resources": {"big": {"nodes": 2, "gpus_per_node": 4, "timeout_min": 90}, "cpu": {"cpus_per_task": 4},
                      "unused": {"gpus_per_node": 1}}}}
    jobs = [PlannedJob("train", "big", "aloe.x:y", {}, "t")] * 3 + [PlannedJob("prep", "cpu")] * 2 + [
        PlannedJob("table", None)]
    rows = plan(config, jobs)
    assert [r.stage for r in rows] == ["big", "cpu", "local", "total"]
    big, cpu, local, total = rows
    assert (big.jobs, big.submissions, big.allocations, big.gpus_per_job) == (3, 3, 3, 8)
    assert big.requested_gpu_hours == pytest.approx(3 * 8 * 1.5)
    assert big.expected_gpu_hours is None  # no measured throughput for this function / teacher
    assert (cpu.jobs, cpu.gpus_per_job, cpu.requested_gpu_hours, cpu.expected_gpu_hours) == (2, 0, 0.0, 0.0)
    assert (local.jobs, local.submissions) == (1, 0)
    assert (total.jobs, total.submissions, total.requested_gpu_hours) == (6, 5, 36.0)
    assert to_csv(rows).splitlines()[-1] == "total,6,5,5,,36.00,0.00"
    config["p"]["resources"]["cpu"]["where"] = "submit_host"
    rows = plan(config, jobs)
    assert [(r.stage, r.submissions, r.where) for r in rows[:-1]] == [
        ("big", 3, "cluster"), ("cpu", 0, "submit host"), ("local", 0, "submit host")]
    assert rows[-1].submissions == 3
    config["p"]["launcher"]["executor"] = "inprocess"  # nothing reaches a cluster
    assert plan(config, jobs)[-1].submissions == 0


def test_packed_stages_plan_packs_and_the_per_student_bound():
    config = {"preset": "p", "p": {
        "launcher": {"executor": "slurm"}, "teachers": {},
        "resources": {"probe": {"gpus_per_node": 1, "timeout_min": 60, "pack_work_min": 10, "expected_min": 4}}}}
    students = [("teacher", "t1"), ("teacher", "t2"), ("aloe", "t1"), ("aloe", "t2")]
    jobs = [PlannedJob("knn", "probe", "aloe.eval.probe_stages:run_knn", {}, t,
                       (("variant", v),) if v == "teacher" else (("teacher", t), ("variant", v)))
            for v, t in students for _ in range(5)]
    bound = Bound()
    probe, _ = plan(config, jobs, bound)
    # 20 jobs x 4 min in packs of at most 30 min (half the time limit): 7 per pack
    assert (probe.jobs, probe.submissions, probe.allocations) == (20, 1, 3)
    assert probe.requested_gpu_hours == pytest.approx(3 * 1.0)
    # the two teachers are one wave (10 jobs: 2 packs); each student its own (5 jobs: 1 pack)
    assert (bound.submissions, bound.gpu_allocations, bound.packed) == (3, 4, ["probe"])
