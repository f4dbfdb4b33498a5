"""Resource mapping: config keys -> submitit parameters -> the sbatch script submitit would submit.

SLURM itself cannot run in CI; submitit only checks that ``srun`` is on PATH before building its
SlurmExecutor, so these tests put an ``srun`` that is never called on PATH and read the sbatch
text submitit renders (nothing is submitted)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from submitit.slurm.slurm import _make_sbatch_string

from aloe.launch import check_resources, escalate, executor_arguments, launch, make_executor, resolve_executor

PAPER_RESOURCES = {
    "partition": "gpu",
    "account": "proj42",
    "qos": "high",
    "constraint": "a100",
    "nodes": 2,
    "gpus_per_node": 4,
    "tasks_per_node": 4,
    "cpus_per_task": 8,
    "mem_gb": 64,
    "timeout_min": 90.5,
    "name": "align-dinov3",
    "additional_parameters": {"reservation": "r1", "exclusive": True},
    "setup": ["module load cuda/12.4"],
    "array_parallelism": 16,
    "max_num_timeout": 5,
    "max_attempts": 2,
}


@pytest.fixture()
def fake_slurm_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch"):
        exe = bin_dir / tool
        exe.write_text("#!/bin/sh\necho 'not a real cluster' >&2\nexit 1\n")
        exe.chmod(0o755)
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho gpu\n")  # a controller that answers
    (bin_dir / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def _sbatch_flags(text: str) -> dict[str, str]:
    flags = {}
    for line in text.splitlines():
        m = re.match(r"#SBATCH --([\w-]+)(?:=(.*))?$", line)
        if m:
            flags[m.group(1)] = m.group(2) if m.group(2) is not None else "<set>"
    return flags


def test_executor_arguments_use_submitit_names() -> None:
    ctor, params = executor_arguments(PAPER_RESOURCES, "slurm")
    assert ctor == {"slurm_max_num_timeout": 5}
    assert params == {
        "name": "align-dinov3",
        "nodes": 2,
        "gpus_per_node": 4,
        "tasks_per_node": 4,
        "cpus_per_task": 8,
        "mem_gb": 64,
        "timeout_min": 91,  # SLURM takes whole minutes: rounded up, never down
        "slurm_partition": "gpu",
        "slurm_account": "proj42",
        "slurm_qos": "high",
        "slurm_constraint": "a100",
        "slurm_additional_parameters": {"reservation": "r1", "exclusive": True},
        "slurm_setup": ["module load cuda/12.4"],
        "slurm_array_parallelism": 16,
    }
    _, local = executor_arguments({"timeout_min": 0.5, "mem_gb": 3}, "local")
    assert local == {"mem_gb": 3, "local_timeout_min": 0.5}


def test_sbatch_script_carries_every_resource(fake_slurm_path: Path, tmp_path: Path) -> None:
    executor = make_executor(PAPER_RESOURCES, "slurm", tmp_path / "logs")
    slurm = executor._executor
    assert slurm.max_num_timeout == 5
    flags = _sbatch_flags(slurm._make_submission_file_text("python -u -m submitit.core._submit x", "uid"))
    assert flags["partition"] == "gpu"
    assert flags["account"] == "proj42"
    assert flags["qos"] == "high"
    assert flags["constraint"] == "a100"
    assert flags["nodes"] == "2"
    assert flags["gpus-per-node"] == "4"
    assert flags["ntasks-per-node"] == "4"
    assert flags["cpus-per-task"] == "8"
    assert flags["mem"] == "64GB"
    assert flags["time"] == "91"
    assert flags["job-name"] == "align-dinov3"
    assert flags["reservation"] == "r1"
    assert flags["exclusive"] == "<set>"
    assert flags["signal"] == "USR2@90"  # submitit's requeue signal for Checkpointable jobs
    assert "array" not in flags
    text = slurm._make_submission_file_text("cmd", "uid")
    assert "module load cuda/12.4" in text.split("# command")[0]
    # The same parameters rendered for a 300-task array: at most 16 run at once.
    array_text = _make_sbatch_string(command="cmd", folder=tmp_path, map_count=300, **slurm.parameters)
    assert _sbatch_flags(array_text)["array"] == "0-299%16"


def test_escalated_resources_reach_the_sbatch_script(fake_slurm_path: Path, tmp_path: Path) -> None:
    base = {"mem_gb": 24, "timeout_min": 50, "escalation_factor": 1.5, "max_mem_gb": 40}
    once, twice = escalate(base, 1), escalate(base, 2)
    assert (once["mem_gb"], once["timeout_min"]) == (36, 75)
    assert (twice["mem_gb"], twice["timeout_min"]) == (40, 112.5)  # memory capped at max_mem_gb
    assert escalate(base, 0) == base
    flags = _sbatch_flags(make_executor(twice, "slurm", tmp_path)._executor._make_submission_file_text("c", "u"))
    assert (flags["mem"], flags["time"]) == ("40GB", "113")


def test_bad_resources_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['memory'\]"):
        check_resources({"memory": 12})
    with pytest.raises(ValueError, match=r"resources.mem_gb: expected int or float, got '12G'"):
        check_resources({"mem_gb": "12G"})
    with pytest.raises(ValueError, match=r"resources.gpus_per_node: expected int, got True"):
        check_resources({"gpus_per_node": True})
    with pytest.raises(ValueError, match=r"resources.timeout_min: must be positive"):
        check_resources({"timeout_min": 0})
    with pytest.raises(ValueError, match=r"resources.setup: expected a list of strings"):
        check_resources({"setup": ["ok", 3]})


def test_auto_picks_slurm_only_when_its_tools_exist(fake_slurm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_executor("auto") == "slurm"
    # Client tools without a cluster (installed, nothing configured): sinfo fails -> in-process.
    (fake_slurm_path / "sinfo").write_text(
        "#!/bin/sh\necho 'sinfo: error: Could not establish a configuration source' >&2\nexit 1\n")
    assert resolve_executor("auto") == "inprocess"
    monkeypatch.setenv("PATH", os.environ["PATH"].split(os.pathsep, 1)[1])
    monkeypatch.setenv("SLURM_CONF", str(fake_slurm_path / "no-such-slurm.conf"))
    assert resolve_executor("auto") == "inprocess"
    with pytest.raises(ValueError, match="executor: expected auto, slurm, local or inprocess, got 'debug'"):
        resolve_executor("debug")  # type: ignore[arg-type]


def test_inprocess_runs_in_this_process_without_record(tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    result = launch(os.getpid, {}, output=out, resources={"mem_gb": 4}, log_dir=tmp_path / "logs", executor="inprocess")
    assert result == os.getpid()
    assert not (tmp_path / "logs").exists()  # no job, no record
    assert not (tmp_path / "logs").exists()


def test_job_claim_counts_what_the_whole_job_holds() -> None:
    from aloe.launch.resources import job_claim

    claim = job_claim({"nodes": 2, "gpus_per_node": 4, "tasks_per_node": 4, "cpus_per_task": 6, "mem_gb": 100,
                       "timeout_min": 60, "partition": "gpu"})
    assert claim == {"gpus": 8, "cpus": 48, "mem_mib": 204800}
    assert job_claim({"cpus_per_task": 16, "mem_gb": 0.5}) == {"gpus": 0, "cpus": 16, "mem_mib": 512}
    assert job_claim({}) == {"gpus": 0, "cpus": 1}  # no mem_gb: the cluster's default memory, not claimed
    with pytest.raises(ValueError, match="resources.gpus_per_node"):
        job_claim({"gpus_per_node": "8"})
