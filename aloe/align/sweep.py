"""The LR sweep's selection: of the finished runs (one per LR), the one with the lowest held-out loss."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from aloe.io import read_json, write_json


def select_best_run(run_dirs: Sequence[str | os.PathLike], out_json: str | os.PathLike) -> dict:
    """Pick the finished run with the lowest held-out loss; write the comparison to ``out_json``.

    Each run folder must hold the ``result.json`` written by ``train`` with a ``best_heldout``
    value (the run had a held-out split). Returns the record written.
    """
    if not run_dirs:
        raise ValueError("select_best_run: no runs to compare")
    runs = []
    for d in run_dirs:
        result_file = Path(d) / "result.json"
        if not result_file.is_file():
            raise FileNotFoundError(f"run {d} is not finished: {result_file} is missing")
        result = read_json(result_file)
        loss = result.get("best_heldout")
        if loss is None or not math.isfinite(loss):
            raise ValueError(f"run {d} has no finite held-out loss (config key 'heldout_shards' unset?)")
        runs.append({"run": str(d), "lr": result["config"]["lr"], "heldout_loss": loss, "step": result["step"]})
    best = min(runs, key=lambda r: r["heldout_loss"])
    record = {"selected": best["run"], "selected_lr": best["lr"], "selected_heldout_loss": best["heldout_loss"],
              "compared": runs}
    write_json(out_json, record)
    return record
