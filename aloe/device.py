"""Which torch device a stage runs on: ``auto`` is decided where the job runs, not where it is
planned (a stage planned for a GPU node may run in-process on a CPU machine, or the reverse)."""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        log.warning("CUDA_VISIBLE_DEVICES=%s but torch sees no GPU: running on the CPU",
                    os.environ["CUDA_VISIBLE_DEVICES"])
    return torch.device("cpu")
