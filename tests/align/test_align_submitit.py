"""The submitit entry point requeues itself on a (simulated) preemption and resumes from its checkpoint."""

import json
import os
import signal
import time

import safetensors.torch
import submitit
import torch
from align_helpers import base_config

from aloe.align import AlignJob, TrainConfig, train
from aloe.models import bcosify, load_teacher, shared_linear_weights


def _steps(path):
    try:
        return [json.loads(x)["step"] for x in open(path)]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def test_local_job_interrupted_requeues_and_resumes(teacher_dir, shards, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = base_config(tmp_path / "run", {**shards, "heldout": []}, total_steps=16, warmup_steps=2, alpha=0.01)
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=5)
    job = executor.submit(AlignJob({"teacher": teacher_dir, "train": cfg}))
    deadline = time.time() + 120
    while not _steps(tmp_path / "run" / "metrics.jsonl") or max(_steps(tmp_path / "run" / "metrics.jsonl")) < 2:
        assert time.time() < deadline and not job.done(), job.stderr()
        time.sleep(0.02)
    # what SLURM does at preemption / before the time limit: SIGUSR2 to the task. (job._interrupt()
    # signals the local controller process, which does not forward USR2, so signal its child.)
    children = open(f"/proc/{job._process.pid}/task/{job._process.pid}/children").read().split()
    assert len(children) == 1
    os.kill(int(children[0]), signal.SIGUSR2)
    result = job.result()
    log = job.stdout() or ""
    assert "Calling checkpoint method" in log and "Requeued job" in log
    assert result["step"] == 16
    # the requeued attempt resumed from the checkpoint saved when the signal arrived
    resumed_at = json.load(open(tmp_path / "run" / "result.json"))["resumed_at"]
    assert len(resumed_at) == 1 and 2 <= resumed_at[0] < 16
    assert _steps(tmp_path / "run" / "metrics.jsonl") == list(range(1, 17))
    # the preempted + requeued job ends exactly where an uninterrupted run does
    teacher = load_teacher(teacher_dir)
    ref = bcosify(teacher)
    torch.set_num_threads(1)
    ref_cfg = base_config(tmp_path / "ref", {**shards, "heldout": []}, total_steps=16, warmup_steps=2, alpha=0.01)
    train(TrainConfig.from_dict(ref_cfg), teacher, ref, weight_pairs=shared_linear_weights)
    got = safetensors.torch.load_file(tmp_path / "run" / "student" / "model.safetensors")
    for k, v in ref.state_dict().items():
        assert torch.equal(got[k], v), k
