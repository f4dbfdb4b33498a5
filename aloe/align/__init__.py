"""Label-free alignment of B-cos students to frozen teachers, and the B-cosification baselines."""

from aloe.align.config import TrainConfig
from aloe.align.job import AlignJob, run_alignment
from aloe.align.losses import weight_norm_penalty
from aloe.align.sweep import select_best_run
from aloe.align.train import TrainingInterrupted, TrainResult, train
from aloe.depths import default_depths, resolve_depths

__all__ = [
    "AlignJob", "TrainConfig", "TrainResult", "TrainingInterrupted", "default_depths", "resolve_depths",
    "run_alignment", "select_best_run", "train", "weight_norm_penalty",
]
