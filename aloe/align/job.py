"""Entry points: a plain function for Snakemake / scripts and a submitit-checkpointable job.

Job config (one dict): ``teacher`` (name or path for ``aloe.load_teacher``), ``b``, ``stem``
and ``bcos_form`` (for ``aloe.bcosify``) and ``train`` (the ``TrainConfig`` keys).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import submitit

from aloe.align.config import TrainConfig
from aloe.align.train import TrainResult, train
from aloe.io import read_json, write_json
from aloe.models import bcosify, load_teacher, shared_linear_weights

JOB_KEYS = ("teacher", "b", "stem", "bcos_form", "train", "data")  # data: fingerprint of the run's data (recorded only)


def build_from_foundation(job: dict[str, Any]):
    """(teacher, student, weight_pairs) from the foundation API (``load_teacher`` / ``bcosify``)."""
    if "teacher" not in job:
        raise ValueError("alignment job config lacks the 'teacher' key (an HF id or a local folder)")
    teacher = load_teacher(job["teacher"])
    student = bcosify(teacher, b=job.get("b", 2), stem=job.get("stem", "linear"),
                      bcos_form=job.get("bcos_form", "cosine"))
    # what the saved student's config and model card say of it (aloe.models.model_card)
    student.config.teacher = str(job["teacher"])
    student.config.alignment = {k: job[k] for k in ("b", "stem", "bcos_form", "train") if k in job}
    if teacher.family == "siglip" and teacher.tokenizer is not None:  # prompt targets travel with the student
        student.attach_text_tower(teacher)
    return teacher, student, shared_linear_weights


def run_alignment(job: dict[str, Any], build: Callable = build_from_foundation, **train_kw) -> TrainResult:
    """Build teacher and student, then train (or resume) the run described by ``job``."""
    unknown = sorted(set(job) - set(JOB_KEYS))
    if unknown:
        raise ValueError(f"unknown alignment job key(s): {unknown}; expected {JOB_KEYS}")
    if "train" not in job:
        raise ValueError("alignment job config lacks the 'train' section")
    cfg = TrainConfig.from_dict(job["train"])
    teacher, student, weight_pairs = build(job)
    return train(cfg, teacher, student, weight_pairs=weight_pairs, **train_kw)


class AlignJob(submitit.helpers.Checkpointable):
    """Submitit job; on preemption/timeout submitit calls ``checkpoint`` and requeues ``self``.

    The requeued job calls ``run_alignment`` again, which resumes from the newest on-disk
    checkpoint (``train`` also saves one itself when the signal arrives, before handing the
    signal on to submitit's handler).
    """

    def __init__(self, job: dict[str, Any], build: Callable = build_from_foundation, result: str | None = None):
        self.job, self.build, self.result = job, build, result

    def __call__(self) -> dict:
        if _in_submitit_job() and "RANK" not in os.environ:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        result = run_alignment(self.job, self.build)
        run_dir = Path(self.job["train"]["out_dir"])
        if self.result is not None and int(os.environ.get("RANK", "0")) == 0:
            # the workflow's output: the run's own result.json plus where the run lives
            write_json(self.result, {**read_json(run_dir / "result.json"), "run_dir": str(run_dir),
                                     "data_fingerprint": self.job.get("data")})
        return {"step": result.step, "stopped_early": result.stopped_early, "best_heldout": result.best_heldout,
                "student_dir": str(result.student_dir)}

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(AlignJob(self.job, self.build, self.result), *args, **kwargs)


def _in_submitit_job() -> bool:
    try:
        submitit.JobEnvironment()
    except RuntimeError:
        return False
    return True
