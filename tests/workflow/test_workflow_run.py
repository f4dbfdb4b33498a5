"""The tiny preset end to end through Snakemake, then precise reruns (a real run, no mocks)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from snakemake_output import NOTHING_TO_DO, job_blocks, job_counts

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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    (workdir / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    # the tiny preset's GPU stages ask for one GPU each: the cap lets one of them run at a time
    out = snakemake(workdir, "--cores", "2", "--resources", "gpus=1")
    (workdir / "first_run.out").write_text(out)
    return workdir


def test_tiny_dag_builds_every_table(tiny_run):
    tables = tiny_run / "results" / "tables"
    for name in ("table2", "table3a", "table3b", "table4", "tableB1", "tableB2", "tableB3", "tableB4", "tableB5",
                 "tableB6", "tableB8"):
        assert (tables / f"{name}.csv").is_file() and (tables / f"{name}.tex").is_file(), name
    for plot in ("fig9_data_efficiency.png", "fig1_gridpg_vs_accuracy.png", "figB3_deletion.png", "fig1_pca.png",
                 "explanations.png", "zero_shot_explanations.png"):
        assert (tiny_run / "results" / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t2 = pd.read_csv(tables / "table2.csv")
    t2 = t2[t2["source"] == "measured"]
    assert set(t2["variant"]) == {"teacher", "bcosification", "aloe"}
    assert set(t2["backbone"]) == {"demo_vit", "demo_dinov3", "demo_siglip"}
    assert all(math.isfinite(v) for v in t2["value"])
    tex = (tables / "table2.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 1 and r"\bottomrule" in tex


def test_gpu_cap_holds_one_gpu_job_at_a_time(tiny_run):
    """`--resources gpus=1`: no GPU-claiming job starts while another one runs; CPU jobs still do."""
    gpu_jobs, running, most, overlapped_cpu = set(), set(), 0, False
    for job in job_blocks((tiny_run / "first_run.out").read_text()):
        if "finished" in job:
            running.discard(job["finished"])
        elif int(job["resources"].get("gpus", 0)) > 0:
            gpu_jobs.add(job["jobid"])
            running.add(job["jobid"])
            most = max(most, len(running & gpu_jobs))
        elif running & gpu_jobs:
            overlapped_cpu = True
    assert len(gpu_jobs) > 50  # align, features, probes, explanations
    assert most == 1
    assert overlapped_cpu  # the cap counts GPUs, not jobs: cores=2 still runs a CPU job beside a GPU one


def test_the_alignment_really_ran(tiny_run):
    summary = yaml.safe_load((tiny_run / "results/alignment_sets/synthetic/shards/summary.json").read_text())
    assert summary["failures_by_reason"] and summary["successes"] > 0  # the broken URLs were counted
    (metrics_file,) = (tiny_run / "results/align/demo_vit/main/lr0.001").glob("runs/*/metrics.jsonl")  # its run folder
    metrics = metrics_file.read_text().splitlines()
    assert len(metrics) >= 20


def test_complete_run_plans_nothing(tiny_run):
    out = snakemake(tiny_run, "-n", "--quiet", "rules")
    assert NOTHING_TO_DO in out and job_counts(out) == {}


def test_lp_edit_reruns_only_lp_and_its_consumers(tiny_run):
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    cfg["tiny"]["evaluation"]["linear_probe"]["iterations"] += 50
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(cfg))  # also re-sorts every key: must not matter
    try:
        counts = job_counts(snakemake(tiny_run, "-n", "--quiet", "rules"))
    finally:
        (tiny_run / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    assert counts.pop("linear_probe") > 0
    # consumers: the tables, plots and report pages that show LP; GridPG, deletion and the explanation
    # grid's panels (they use the LP head), and the grid drawn from them
    assert set(counts) <= {"table", "table_html", "plot_data_efficiency", "plot_gridpg_vs_accuracy", "gridpg",
                           "deletion", "plot_deletion_curves", "explanation_panels", "explanation_grid", "pca_view",
                           "zero_shot_explanations", "all"}
    assert "features" not in counts and "align_run" not in counts and "knn" not in counts


def test_report_holds_tables_plots_and_explanations(tiny_run):
    snakemake(tiny_run, "--report", str(tiny_run / "report.html"))
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for name in ("table2.html", "tableB6.html", "fig9_data_efficiency.png", "explanations.png", "figB3_deletion.png",
                 "fig1_pca.png"):
        assert name in html, name


def test_resource_edits_rerun_nothing(tiny_run):
    """Partition, account, memory, time: where a job runs is not what it computes."""
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    cfg["tiny"]["cluster"] = {"partition": "other", "account": "another"}
    cfg["tiny"]["resources"]["align"]["mem_gb"] = 64
    cfg["tiny"]["resources"]["probe"]["timeout_min"] = 120
    (tiny_run / "config.yaml").write_text(yaml.safe_dump(cfg))
    try:
        out = snakemake(tiny_run, "-n", "--quiet", "rules")
    finally:
        (tiny_run / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    assert NOTHING_TO_DO in out and job_counts(out) == {}


# Table 2 (every teacher, its ALOE student and B-cosification baseline, the synthetic set's download,
# splits, subsets, trainings, features and probes on the way), rebuilt in a fresh copy of the repository:
# the published table's bytes, and each record behind it, must not depend on the run.
SMALL_TARGET = ["results/tables/table2.csv", "results/tables/table2.md",
                "results/metrics/linear_probe/demo_vit/aloe/shapes.json",
                "results/metrics/linear_probe/demo_vit/bcosification/shapes.json"]
# What two runs of one commit and config on one machine may differ in: timings, logs, and what
# img2dataset writes in download order or with the loopback server's port (the alignment set's own
# shards and their metadata; every reader takes their samples in key order).
VOLATILE = re.compile(r"^results/(logs|benchmarks|jobs)/|^results/alignment_sets/[^/]+/(shards/|subset_[^/]+/.*\.tar$)")
TIMING_KEYS = {"img_per_s", "seconds"}


def copy_repository(dest: Path) -> Path:
    """The working tree's files as git knows them (tracked and untracked-but-not-ignored), at the same
    commit: its ``.git`` file points to this checkout's git folder, so records name the same code_version."""
    git = ["git", "-C", str(ROOT)]
    listed = subprocess.run([*git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    gitdir = subprocess.run([*git, "rev-parse", "--absolute-git-dir"], capture_output=True, text=True, check=True)
    (dest / ".git").write_text(f"gitdir: {gitdir.stdout.strip()}\n")
    return dest


def without_timings(path: Path) -> str:
    """A JSON or JSON-lines file with its timing fields dropped (they measure the machine, not the result)."""
    def drop(obj):
        if isinstance(obj, dict):
            return {k: drop(v) for k, v in obj.items() if k not in TIMING_KEYS}
        return [drop(v) for v in obj] if isinstance(obj, list) else obj

    text = path.read_text()
    if path.suffix == ".jsonl":
        return "\n".join(json.dumps(drop(json.loads(line)), sort_keys=True) for line in text.splitlines())
    return json.dumps(drop(json.loads(text)), sort_keys=True)


def tar_samples(path: Path) -> list[tuple[str, bytes]]:
    """Member names and bytes, without img2dataset's per-sample .json (it holds the download URL)."""
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if not m.name.endswith(".json")]


def test_a_fresh_copy_reproduces_every_record_byte_for_byte(tiny_run, tmp_path):
    repo = copy_repository(tmp_path / "repo")
    env = dict(ENV, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *SMALL_TARGET, "--config", "preset=tiny"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    produced = sorted(p.relative_to(repo).as_posix() for p in (repo / "results").rglob("*") if p.is_file())
    compared, differ = 0, []
    for rel in produced:
        if VOLATILE.search(rel):
            continue
        mine, theirs = repo / rel, tiny_run / rel
        if rel.endswith(("metrics.jsonl", "teacher.json", "train_summary.json")):
            same = without_timings(mine) == without_timings(theirs)
        else:
            same = mine.read_bytes() == theirs.read_bytes()
        compared += 1
        differ += [] if same else [rel]
    assert not differ, f"differ between two runs: {differ}"
    for rel in (r for r in produced if r.endswith(".tar") and "/subset_" in r):  # sample order and image bytes
        assert tar_samples(repo / rel) == tar_samples(tiny_run / rel), rel
    kinds = {rel.rsplit(".", 1)[-1] for rel in produced if not VOLATILE.search(rel)}
    assert compared > 40 and {"json", "safetensors", "txt", "tar", "pt"} <= kinds
    for rel in SMALL_TARGET:  # the table and records themselves, byte for byte
        assert (repo / rel).read_bytes() == (tiny_run / rel).read_bytes()


def test_a_demo_student_is_a_hugging_face_model_that_explains_a_jpeg(tiny_run, tmp_path):
    """What the README's Python API section shows, on the student and head the workflow made."""
    import numpy as np
    from PIL import Image

    student_dir = tiny_run / "results/backbones/demo_vit/aloe"
    head = tiny_run / "results/metrics/linear_probe/demo_vit/aloe/shapes.head.safetensors"
    jpeg = tmp_path / "photo.jpg"  # another size than the student's 32 px training images
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(jpeg)
    code = ("import sys, aloe.models\nfrom transformers import AutoModel\nfrom PIL import Image\n"
            "m = AutoModel.from_pretrained(sys.argv[1], head=sys.argv[2])\n"
            "e = m.explain(Image.open(sys.argv[3]), 0)\nprint(type(m).__name__, tuple(e.rgba.shape), m.config.teacher)")
    proc = subprocess.run([sys.executable, "-c", code, student_dir, head, jpeg], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["BcosStudent", "(1,", "32,", "32,", "4)", "results/teachers/demo_vit/model"]
    proc = subprocess.run([shutil.which("aloe") or "aloe", "explain", jpeg, "--model", student_dir, "--head", head,
                           "-o", tmp_path / "out"], env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"class \d+ \((red|green|blue|yellow) \w+\)", proc.stdout), proc.stdout  # names from the head
    assert np.asarray(Image.open(tmp_path / "out" / "photo.png")).shape == (32, 64, 3)
