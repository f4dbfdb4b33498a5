"""Training configuration: one flat dataclass; unknown keys are an error naming the key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    out_dir: str
    shards: list[str]
    heldout_shards: list[str] = field(default_factory=list)
    # objective
    objective: str = "aloe"  # aloe | supervised | global_distill
    loss: str = "cosine"  # cosine | mse | siglip | infonce
    lambda_global: float = 1.0
    lambda_layers: float = 1.0
    depths: list[int | str] | None = None  # 1-based block outputs or symbols (aloe.depths); None -> {L//3, 2L//3, L}
    alpha: float = 0.0  # weight-norm regulariser; the paper gives no value, public code does not apply it
    temperature: float = 0.07  # InfoNCE only
    num_classes: int | None = None  # supervised only
    # optimisation
    lr: float = 1e-3
    total_steps: int = 1000
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant_cosine
    tail_steps: int = 0  # constant_cosine only
    min_lr_factor: float = 0.0
    global_batch: int = 1024
    micro_batch: int = 64  # per rank and forward pass; accumulation = global / (micro * world)
    grad_clip: float = 1.0
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16
    device: str = "auto"
    # data
    num_workers: int = 4
    shuffle_buffer: int = 1000
    train_keys: str | None = None  # keys file (a data-stage subset) restricting the training samples
    heldout_keys: str | None = None  # keys file of the held-out split (e.g. the data stage's val keys)
    seed: int = 0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    max_corrupt_share: float = 0.05  # share of damaged distinct samples (aloe.data.damage) that fails the run
    corrupt_check_after: int = 256  # distinct samples read before that share is enforced
    # held-out selection, checkpoints, logging
    eval_every: int = 0  # steps; 0 = only at the end
    eval_samples: int | None = None  # cap on held-out samples (None = all)
    patience: int = 0  # evaluations without improvement before stopping; 0 = never stop early
    min_delta: float = 0.0
    ckpt_every: int = 0  # steps; 0 = only on signals and at the end
    keep_checkpoints: int = 2
    # a run folder that already holds a finished run: False = return it (0 steps); True = move it
    # to <out_dir>.previous and train anew (the workflow: its job only runs when the output is wanted anew)
    retrain_finished: bool = False
    log_every: int = 1
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown alignment config key(s): {unknown}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def accumulation(self, world_size: int) -> int:
        per_step = self.micro_batch * world_size
        if self.global_batch % per_step:
            raise ValueError(
                f"config key 'global_batch'={self.global_batch} is not a multiple of "
                f"micro_batch ({self.micro_batch}) x world size ({world_size})"
            )
        return self.global_batch // per_step

    def validate(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"config key 'precision': {self.precision!r} is not auto | fp32 | bf16")
        for key in ("lr", "global_batch", "micro_batch", "total_steps"):
            if not getattr(self, key) > 0:
                raise ValueError(f"config key '{key}' must be > 0, got {getattr(self, key)!r}")
        if not 0 <= self.max_corrupt_share <= 1:
            raise ValueError(f"config key 'max_corrupt_share' must be in [0, 1], got {self.max_corrupt_share}")
        if self.patience and not self.heldout:
            raise ValueError("config key 'patience' > 0 needs 'heldout_shards' or 'heldout_keys' for early stopping")
        if self.heldout_keys and not self.heldout_shards and not self.train_keys:
            raise ValueError("config key 'heldout_keys' selects held-out samples inside 'shards'; give 'train_keys' "
                             "too (e.g. the data stage's subset keys) so they are not trained on")

    @property
    def heldout(self) -> list[str]:
        """Shards of the held-out split: 'heldout_shards', else 'shards' filtered by 'heldout_keys'."""
        return list(self.heldout_shards) or (list(self.shards) if self.heldout_keys else [])
