"""The workflow without running it: schema, lint, formatting, and the paper study's plan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aloe.config import load_config
from snakemake_output import job_blocks, job_counts

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_paper_rules_declare_the_gpus_cpus_and_memory_of_their_jobs():
    """`--resources gpus=N` caps the GPUs held at once: each rule declares what its job asks for."""
    out = snakemake("-n", "--profile", "slurm")
    declared = {}
    for job in job_blocks(out.stdout + out.stderr):
        if "rule" in job:
            res = job["resources"]
            declared.setdefault(job["rule"], set()).add(
                (int(res.get("gpus", 0)), int(res.get("cpus", 0)), int(res.get("mem_mib", 0))))
    res = yaml.safe_load((ROOT / "config.yaml").read_text())["paper"]["resources"]
    assert res["align"]["nodes"] * res["align"]["gpus_per_node"] == 8
    assert declared["align_run"] == declared["baseline_run"] == {(8, 8 * 12, 480 * 1024)}
    assert declared["features"] == {(1, 12, 64 * 1024)}
    for rule in ("linear_probe", "knn", "zero_shot", "dense_probe"):
        assert declared[rule] == {(1, 8, 64 * 1024)}, rule
    assert declared["gridpg"] == declared["explanation_panels"] == {(1, 8, 64 * 1024)}
    assert declared["download_alignment_set"] == declared["alignment_subset"] == {(0, 16, 64 * 1024)}  # CPU jobs
    # on the submit host (where: submit_host): hub teachers and torchvision downloads hold nothing on the cluster;
    # the manual datasets (ImageNet, Stanford Cars, NYUv2) are converted by `data` jobs
    assert declared["teacher"] == {(0, 0, 0)}
    assert declared["prepare_eval_dataset"] == {(0, 0, 0), (0, 16, 64 * 1024)}
    for rule in ("table", "explanation_grid", "select_alignment", "install_baseline", "alignment_splits", "all"):
        assert declared[rule] == {(0, 0, 0)}, rule  # runs on the submit host, holds nothing on the cluster


def test_slurm_profile_caps_the_gpus_and_the_command_line_replaces_it():
    from snakemake.cli import parse_args

    _, args = parse_args(["--profile", str(ROOT / "slurm")])
    assert {k: v.value for k, v in args.resources.items()} == {"gpus": 32}
    _, args = parse_args(["--profile", str(ROOT / "slurm"), "--resources", "gpus=64"])
    assert {k: v.value for k, v in args.resources.items()} == {"gpus": 64}


def test_paper_dry_run_plans_the_study_without_network():
    out = snakemake("-n", "--profile", "slurm", "--quiet", "rules")
    counts = job_counts(out.stdout + out.stderr)
    cfg = load_config(ROOT / "config.yaml")["paper"]
    n_teachers = len(cfg["teachers"])
    abl = cfg["ablations"]
    main_runs = len(cfg["alignment"]["teachers"]) * len(cfg["alignment"]["lrs"])
    ablation_runs = (len(abl["depths"]["teachers"]) * len(abl["depths"]["settings"])
                     + len(abl["losses"]["teachers"]) * len(abl["losses"]["settings"])
                     + len(abl["fractions"]["teachers"]) * len(abl["fractions"]["settings"]))
    assert counts["teacher"] == n_teachers == 8
    assert counts["align_run"] == main_runs + ablation_runs == 24 + 5 + 12 + 8
    assert counts["select_alignment"] == len(cfg["alignment"]["teachers"]) + ablation_runs == 33
    assert counts["baseline_run"] == counts["install_baseline"] == 3
    assert counts["prepare_eval_dataset"] == 11
    assert counts["download_alignment_set"] == 1 and counts["alignment_splits"] == 1
    # val + the fractions below 1 that the data-efficiency ablation trains on
    assert counts["alignment_subset"] == 1 + sum(f < 1 for f in abl["fractions"]["settings"])
    # LP: every backbone of Table B1 (8 teachers, 8 ALOE students, 3 baselines) on all datasets, the
    # depth ablation (Table 4) on all datasets, the loss ablation (B8) and data fractions (Fig. 9) on the first
    n_cls = len(cfg["evaluation"]["classification"])
    assert counts["linear_probe"] == 19 * n_cls + 5 * n_cls + 12 + 8 == 260
    assert counts["knn"] == 19 * n_cls == 190
    assert counts["table"] == 11
    assert sum(counts.values()) >= 500


def test_schema_violation_stops_before_the_dag(tmp_path):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["demo"]["alignment"]["lrs"] = "fast"
    cfg["demo"]["evaluation"].setdefault("knn", {})["bogus_key"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake("-n", "--configfile", str(bad), check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "demo.alignment.lrs: 'fast' is not of type 'array'" in text
    assert "demo.evaluation.knn: Additional properties are not allowed ('bogus_key' was unexpected)" in text
    assert "Building DAG" not in text
    assert len(text.splitlines()) < 60  # the key paths and messages, not the whole schema


def test_unknown_preset_is_rejected():
    out = snakemake("-n", "--config", "preset=huge", check=False)
    assert out.returncode != 0 and "'huge' is not one of ['demo', 'tiny', 'paper']" in out.stdout + out.stderr


def test_lint_clean():
    out = snakemake("--lint", check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_clean():
    """pycodestyle, pyflakes and unused noqa markers, as configured in pyproject.toml."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "aloe", "tests", "benchmarks", "workflow/scripts"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_snakefmt_clean():
    files = ["Snakefile", *sorted(str(p) for p in (ROOT / "workflow" / "rules").glob("*.smk"))]
    out = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_table_target_builds_only_its_sub_dag():
    out = snakemake("results/tables/table3b.tex", "-n", "--config", "preset=tiny", "--quiet", "rules")
    counts = job_counts(out.stdout + out.stderr)
    assert counts["table"] == 1
    assert counts["zero_shot"] == 3  # demo_siglip: teacher, bcosification, aloe
    for other in ("linear_probe", "knn", "dense_probe", "gridpg", "plot_data_efficiency"):
        assert other not in counts, other


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_data_quality_reads_every_record_of_the_tables_dag_and_adds_no_job(preset):
    """results/tables/data_quality.csv needs the downloads, subsets, runs and feature caches of the
    tables and plots: all of them, and no job that `all` would not run anyway."""
    from aloe.registry import TABLE_NAMES

    targets = [f"results/tables/{t}.{e}" for t in TABLE_NAMES for e in ("csv", "tex", "html")]
    targets += [f"results/plots/{p}.png" for p in ("fig9_data_efficiency", "fig1_gridpg_vs_accuracy", "explanations")]
    out = snakemake(*targets, "-n", "--config", f"preset={preset}", "--quiet", "rules")
    tables = job_counts(out.stdout + out.stderr)
    out = snakemake("results/tables/data_quality.csv", "-n", "--config", f"preset={preset}", "--quiet", "rules")
    quality = job_counts(out.stdout + out.stderr)
    for rule in ("download_alignment_set", "alignment_subset", "align_run", "baseline_run", "features"):
        assert quality[rule] == tables[rule] > 0, rule
    assert quality.pop("data_quality") == 1 and set(quality) <= set(tables)


def test_every_rule_calls_run_rule_of_its_familys_stages_module():
    """The naming rule: rule X of workflow/rules/F.smk calls run_X of aloe.F.stages or aloe.F.<kind>_stages."""
    from aloe.pipeline import import_callable

    seen = 0
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, re.S | re.M):
            fns = re.findall(r"^\s+fn=(.*)$", body, re.M)
            if not fns:
                continue
            assert len(fns) == 1, (smk.name, rule, fns)
            match = re.fullmatch(rf'"(aloe\.{smk.stem}\.(?:\w+_)?stages:run_{rule})",', fns[0])
            assert match, (smk.name, rule, fns)
            assert callable(import_callable(match.group(1)))
            seen += 1
    assert seen == 27  # every rule that runs a stage (all others only gather targets)
