"""Many small jobs become ONE SLURM array, and cancelling them is one scancel.

No SLURM in CI: ``sbatch`` and ``scancel`` here are stand-ins that log their arguments (sbatch
also prints the line real sbatch prints). Everything else is submitit's real code path."""

from __future__ import annotations

import os
from pathlib import Path

import launch_jobfns as jobfns
import pytest

from aloe.launch import read_record
from aloe.launch.launcher import _Item, _Run
from aloe.launch.record import call_key


@pytest.fixture()
def slurm_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    scripts = {
        "sbatch": f'echo "sbatch $@" >> {calls}\necho "env conf=$SLURM_CONF job=$SLURM_JOB_ID" >> {calls}\n'
        'echo "Submitted batch job 4242"\n',
        "scancel": f'echo "scancel $@" >> {calls}\n',
        "srun": "exit 1\n",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_many_calls_go_out_as_one_array_and_cancel_together(
    slurm_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if submitting from inside a SLURM job on a site that sets SLURM_CONF.
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_CONF", "/etc/site/slurm.conf")
    kwargs = [{"a": i, "b": 1, "counter": str(tmp_path / "c")} for i in range(5)]
    items = [_Item(tmp_path / f"lp_{i}.json", kw, call_key(jobfns.add, kw)) for i, kw in enumerate(kwargs)]
    run = _Run(jobfns.add, {"array_parallelism": 2, "partition": "cpu", "mem_gb": 4}, "slurm", tmp_path / "logs", 0.05)
    run._submit(items)
    calls = slurm_tools.read_text().splitlines()
    assert len(calls) == 2 and calls[0].startswith("sbatch ")  # one submission for five jobs
    assert calls[1] == "env conf=/etc/site/slurm.conf job="  # the enclosing job's ids are not inherited
    assert os.environ["SLURM_JOB_ID"] == "77"  # ... and come back after submitting
    script = Path(calls[0].split()[1]).read_text()
    assert "#SBATCH --array=0-4%2" in script and "#SBATCH --partition=cpu" in script
    records = [read_record(i.output, tmp_path / "logs") for i in items]
    assert [r.job_id for r in records] == [f"4242_{k}" for k in range(5)]
    assert all(r.cluster == "slurm" and r.state == "submitted" and r.resources["mem_gb"] == 4 for r in records)
    for r in records:  # each array task finds its own pickled call
        assert (tmp_path / "logs" / f"{r.job_id}_submitted.pkl").exists()
    run.cancel(items)
    calls = slurm_tools.read_text().splitlines()
    assert calls[2] == "scancel " + " ".join(f"4242_{k}" for k in range(5))
    assert all(read_record(i.output, tmp_path / "logs").state == "cancelled" for i in items)
