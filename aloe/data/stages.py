"""The data stages: rule ``X`` of ``workflow/rules/data.smk`` calls ``run_X`` here."""

from __future__ import annotations

import inspect
import os
from typing import Any

from aloe.data.eval_datasets import prepare_eval_dataset as run_prepare_eval_dataset
from aloe.data.img2dataset_stage import download_alignment_set
from aloe.data.subsets import make_key_splits as run_alignment_splits
from aloe.data.subsets import materialize_subset as run_alignment_subset
from aloe.data.synthetic_world import download_synthetic_alignment_set
from aloe.data.synthetic_world import make_synthetic_world as run_synthetic_world


def run_download_alignment_set(out_dir: str | os.PathLike, *, url_list: str | os.PathLike | None = None,
                               world_dir: str | os.PathLike | None = None, **options: Any) -> dict[str, Any]:
    """An alignment set into webdataset shards: img2dataset over ``url_list``, or over the
    synthetic world's caption set (``world_dir``) served on 127.0.0.1. ``options`` are the
    download options of ``aloe.data.img2dataset_stage.download_alignment_set``."""
    if (url_list is None) == (world_dir is None):
        raise ValueError("an alignment set needs exactly one of url_list and world_dir")
    inspect.signature(download_alignment_set).bind("urls", out_dir, **options)  # a wrong option fails here
    if world_dir is not None:
        return download_synthetic_alignment_set(world_dir, out_dir, **options)
    return download_alignment_set(url_list, out_dir, **options)


__all__ = ["run_alignment_splits", "run_alignment_subset", "run_download_alignment_set", "run_prepare_eval_dataset",
           "run_synthetic_world"]
