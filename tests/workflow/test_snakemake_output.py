"""The tests' reader of Snakemake's output, on what Snakemake really prints for a two-rule workflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_output import NOTHING_TO_DO, UnreadableOutputError, job_blocks, job_counts

SNAKEFILE = """
rule all:
    input: "b.txt", "c.txt"

rule make_b:
    output: "b.txt"
    shell: "echo b > {output}"

rule make_c:
    input: "b.txt"
    output: "c.txt"
    shell: "cat {input} > {output}"
"""


def snakemake(workdir: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_job_counts_of_a_plan_a_finished_workflow_and_unreadable_output(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    planned = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert job_counts(planned) == {"make_b": 1, "make_c": 1, "all": 1}
    ran = snakemake(tmp_path)
    assert job_counts(ran) == {"make_b": 1, "make_c": 1, "all": 1}
    assert [j["rule"] for j in job_blocks(ran) if "rule" in j] == ["make_b", "make_c", "all"]
    assert len([j for j in job_blocks(ran) if "finished" in j]) == 3
    nothing = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert NOTHING_TO_DO in nothing and job_counts(nothing) == {}
    # what is neither a table nor "Nothing to be done" is not read as an empty plan
    with pytest.raises(UnreadableOutputError, match="no 'Job stats' table"):
        job_counts("Building DAG of jobs...\nMissingInputException in rule all")
    with pytest.raises(UnreadableOutputError, match="do not add up"):
        job_counts(planned.replace("total         3", "total         4"))
    with pytest.raises(UnreadableOutputError, match="do not add up"):
        job_counts(planned.split("Job stats:")[0] + "Job stats:\njob count\n")
