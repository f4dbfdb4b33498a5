"""The tiny preset end to end through Snakemake, then precise reruns (a real run, no mocks)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--config", "preset=tiny", *args]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in (workdir / "results" / "logs").rglob("*.log")
                         if "Error" in p.read_text())
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out[-4000:]}\n{logs[-6000:]}")
    return out


def planned(out: str) -> dict[str, int]:
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("Reasons:")[0] if "Reasons:" in out else out.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for line in table.splitlines()
            if (m := re.match(r"^(\w+)\s+(\d+)$", line.strip())) and m.group(1) != "total"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    (workdir / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    snakemake(workdir, "--cores", "2")
    return workdir


def test_tiny_dag_builds_every_table(tiny_run):
    tables = tiny_run / "results" / "tables"
    for name in ("table2", "table3a", "table3b", "table4", "tableB1", "tableB2", "tableB3", "tableB4", "tableB5",
                 "tableB6", "tableB8"):
        assert (tables / f"{name}.csv").is_file() and (tables / f"{name}.tex").is_file(), name
    for plot in ("fig9_data_efficiency.png", "fig1_gridpg_vs_accuracy.png"):
        assert (tiny_run / "results" / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t2 = pd.read_csv(tables / "table2.csv")
    t2 = t2[t2["source"] == "measured"]
    assert set(t2["variant"]) == {"teacher", "bcosification", "aloe"}
    assert set(t2["backbone"]) == {"demo_vit", "demo_dinov3", "demo_siglip"}
    assert all(math.isfinite(v) for v in t2["value"])
    tex = (tables / "table2.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 1 and r"\bottomrule" in tex


def test_the_alignment_really_ran(tiny_run):
    summary = yaml.safe_load((tiny_run / "results/alignment_sets/synthetic/shards/summary.json").read_text())
    assert summary["failures_by_reason"] and summary["successes"] > 0  # the broken URLs were counted
    metrics = (tiny_run / "results/align/demo_vit/main/lr0.001/metrics.jsonl").read_text().splitlines()
    assert len(metrics) >= 20


def test_complete_run_plans_nothing(tiny_run):
    assert planned(snakemake(tiny_run, "-n", "--quiet", "rules")) == {}


def test_lp_edit_reruns_only_lp_and_its_consumers(tiny_run):
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    cfg["tiny"]["evaluation"]["linear_probe"]["iterations"] += 50
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(cfg))  # also re-sorts every key: must not matter
    try:
        counts = planned(snakemake(tiny_run, "-n", "--quiet", "rules"))
    finally:
        (tiny_run / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    assert counts.pop("linear_probe") > 0
    # consumers: the tables, plots and report pages that show LP; GridPG, deletion and the explanation grid
    # (they use the LP head)
    assert set(counts) <= {"table", "table_html", "plot_data_efficiency", "plot_gridpg_vs_accuracy", "gridpg",
                           "deletion", "explanation_grid", "all"}
    assert "features" not in counts and "align_run" not in counts and "knn" not in counts


def test_report_holds_tables_plots_and_explanations(tiny_run):
    snakemake(tiny_run, "--report", str(tiny_run / "report.html"))
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for name in ("table2.html", "tableB6.html", "fig9_data_efficiency.png", "explanations.png"):
        assert name in html, name


def test_resource_edits_rerun_nothing(tiny_run):
    """Partition, account, memory, time: where a job runs is not what it computes."""
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    cfg["tiny"]["cluster"] = {"partition": "other", "account": "another"}
    cfg["tiny"]["resources"]["align"]["mem_gb"] = 64
    cfg["tiny"]["resources"]["probe"]["timeout_min"] = 120
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(cfg))
    try:
        counts = planned(snakemake(tiny_run, "-n", "--quiet", "rules"))
    finally:
        (tiny_run / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    assert counts == {}
