"""Held-out alignment loss (paper Sec. 4.3: early stopping and LR selection on a held-out split)."""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch

from aloe.align.distributed import DistInfo, all_reduce_sum
from aloe.data.align_loader import AlignmentBatch


@torch.no_grad()
def heldout_loss(student, teacher, objective, batches: Iterable[AlignmentBatch], info: DistInfo,
                 autocast) -> dict[str, float]:
    """Sample-weighted mean of the objective's feature terms over ``batches`` (all ranks combined).

    Returns ``{"heldout_loss": ..., "heldout/<term>": ...}``; the weight-norm term is excluded
    (it does not depend on the data). The supervised objective is scored on held-out labels.
    """
    was_training = student.training
    student.eval()
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), dtype=torch.float64, device=info.device)
    try:
        for batch in batches:
            pixels = batch.pixels.to(info.device)
            labels = batch.labels.to(info.device) if batch.labels is not None else None
            with autocast():
                t_out = None
                if objective.needs_teacher:
                    t_out = teacher(pixels, output_hidden_states=objective.output_hidden_states)
                loss, terms = objective(student, t_out, pixels, labels, teacher)
            n = pixels.shape[0]
            if "reg" in terms:
                loss = loss - terms.pop("reg")
            for k, v in {"heldout_loss": loss, **{f"heldout/{k}": v for k, v in terms.items()}}.items():
                sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=info.device)) + v.double() * n
            count += n
    finally:
        student.train(was_training)
    count = all_reduce_sum(count, info)
    if count.item() == 0:
        raise RuntimeError("the held-out split yielded no decodable samples (config key 'heldout_shards')")
    return {k: (all_reduce_sum(v, info) / count).item() for k, v in sorted(sums.items())}


def autocast_factory(device: torch.device, use_bf16: bool):
    def make():
        if use_bf16:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    return make
