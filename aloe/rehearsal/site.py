"""The rehearsal's site file: the paper preset pointed at a stand-in outside world, at toy size.

``site.yaml`` is an ordinary ``--configfile`` (merged into config.yaml key by key). It changes
only where things come from (hub cache, url lists, dataset folders, executor) and how big they
are (steps, batches, sample counts, resources); the study's structure (teachers, datasets,
variants, ablations, tables, protocols) stays the paper preset's. ``structure`` is what must not
change, and the tests compare it before and after the merge.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from aloe.config import overlay
from aloe.io import write_text

# Step counts, batches and sample counts of a run that takes minutes on 2 CPU cores.
SIZES: dict[str, Any] = {
    "splits": {"heldout": 24, "samples_per_shard": 64},
    "alignment": {"total_steps": 3, "warmup_steps": 1, "tail_steps": 1, "global_batch": 8, "micro_batch": 8,
                  "eval_every": 3, "eval_samples": 16, "ckpt_every": 3, "num_workers": 0},
    "baselines": {"total_steps": 3, "warmup_steps": 1, "global_batch": 8, "micro_batch": 8, "ckpt_every": 3},
    "ablations": {"total_steps": 3},
    "evaluation": {
        "features": {"batch_size": 128},
        "linear_probe": {"iterations": 60, "batch_size": 64},
        "knn": {"query_chunk": 256},
        "zero_shot": {"batch_size": 128},
        "dense": {"epochs": 1, "batch_size": 8},
        "gridpg": {"num_grids": 4},
        "deletion": {"num_images": 4},
    },
}
ALIGNMENT_SET_SIZES = {"image_size": 64, "processes": 1, "threads": 8, "samples_per_shard": 64, "retries": 0,
                       "timeout": 5}
# Every stage runs here, one process per job, small; the cluster keys are ignored off SLURM.
# pack_wait_s: short pack waits at toy size, for a rehearsal on SLURM (--executor auto; the local
# executor does not pack, aloe.launch.pack.packed).
STAGE_RESOURCES = {"cpus_per_task": 1, "mem_gb": 8, "timeout_min": 60, "pack_wait_s": 5}
ALIGN_RESOURCES = dict(STAGE_RESOURCES, nodes=1, tasks_per_node=1, gpus_per_node=1, max_num_timeout=3)


def site_config(*, hub_cache: str | os.PathLike, url_lists: Mapping[str, str | os.PathLike],
                eval_datasets: Mapping[str, Mapping[str, Any]], executor: str = "local") -> dict[str, Any]:
    """The ``paper:`` block of the site file. ``url_lists``: alignment set -> url list file;
    ``eval_datasets``: dataset -> {"source", "path"} of its local copy."""
    paper = copy.deepcopy(SIZES)
    paper["hub"] = {"cache_dir": str(Path(hub_cache).resolve()), "offline": True}
    paper["alignment_sets"] = {name: dict(ALIGNMENT_SET_SIZES, url_list=str(Path(path).resolve()))
                               for name, path in url_lists.items()}
    paper["evaluation"]["datasets"] = {
        name: {"source": spec["source"], "path": str(Path(spec["path"]).resolve())}
        for name, spec in eval_datasets.items()
    }
    paper["launcher"] = {"executor": executor}
    stages = ("teacher", "data", "features", "probe", "explain")
    paper["resources"] = {stage: dict(STAGE_RESOURCES) for stage in stages}
    paper["resources"]["align"] = dict(ALIGN_RESOURCES)
    return {"paper": paper}


def write_site_file(path: str | os.PathLike, site: Mapping[str, Any]) -> Path:
    header = ("# Rehearsal of the paper study (python -m aloe.rehearsal): the paper preset against a stand-in\n"
              "# outside world on this machine, at toy size. Use with --config preset=paper --configfile=<this>.\n")
    write_text(path, header + yaml.safe_dump(dict(site), sort_keys=False))
    return Path(path)


def merged(config: Mapping[str, Any], site: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` updated with ``site`` key by key, as Snakemake merges a --configfile."""
    return overlay(config, site, replaced=())


def structure(study: Mapping[str, Any]) -> dict[str, Any]:
    """What makes the study the paper's: names, variants, protocols; not sizes or sources."""
    ev = study["evaluation"]
    return {
        "teachers": {n: (t["family"], t["source"], t["depth"]) for n, t in study["teachers"].items()},
        "alignment_sets": sorted(study["alignment_sets"]),
        "alignment": {k: study["alignment"][k] for k in ("set", "teachers", "b", "stem", "lrs", "loss", "depths",
                                                          "lambda_global", "lambda_layers", "alpha", "schedule")},
        "baselines": {k: study["baselines"][k] for k in ("teachers", "supervised_dataset", "lr")},
        "ablations": {k: study["ablations"][k] for k in ("lr", "depths", "losses", "fractions")},
        "splits": {k: study["splits"][k] for k in ("fractions", "seed")},
        "datasets": {n: d["classes"] for n, d in ev["datasets"].items()},
        "evaluation": {"classification": ev["classification"], "zero_shot": ev["zero_shot"]["datasets"],
                       "dense": ev["dense"]["dataset"], "gridpg": (ev["gridpg"]["dataset"], ev["gridpg"]["methods"],
                                                                 ev["gridpg"]["threshold"]),
                       "knn": (ev["knn"]["k"], ev["knn"]["temperature"]), "lp_lrs": ev["linear_probe"]["lrs"]},
        "tables": study["tables"],
    }
