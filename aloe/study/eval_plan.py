"""The settings each evaluation protocol reads: the keyword arguments that the k-NN and
linear-probe rules hand to ``aloe.eval.stages``, exactly the config keys the chosen protocol
uses (so a change of a key the protocol ignores reruns nothing).

``evaluation.knn.protocol`` and ``evaluation.linear_probe.protocol`` pick ``dinov2`` (the
protocols the paper cites: DINO's weighted k-NN, DINOv2's linear evaluation) or ``aloe_code``
(the ALOE authors' released evaluation code); ``aloe.eval.knn`` and ``aloe.eval.linear_probe``
implement both.
"""

from __future__ import annotations

from typing import Any, Mapping

from aloe.eval.linear_probe import cache_layout


def knn_kwargs(knn: Mapping[str, Any]) -> dict[str, Any]:
    """``run_knn``'s protocol settings from config ``evaluation.knn``: ``aloe_code`` votes
    unweighted, so it takes no temperature."""
    kwargs = {"protocol": knn["protocol"], "k": knn["k"], "query_chunk": knn["query_chunk"]}
    if knn["protocol"] == "dinov2":
        kwargs["temperature"] = knn["temperature"]
    return kwargs


# The config keys of ``evaluation.linear_probe`` each protocol reads.
LINEAR_PROBE_KEYS = {
    "dinov2": ("iterations", "batch_size", "lrs", "val_fraction", "n_last_blocks", "avgpool", "seed"),
    "aloe_code": ("seed",),
}


def linear_probe_kwargs(lp: Mapping[str, Any]) -> dict[str, Any]:
    """``run_linear_probe``'s protocol settings from config ``evaluation.linear_probe``: DINOv2's
    iterations, batch, LR grid and validation split, or the ``aloe_code`` block (epochs, batch,
    LRs, weight decay; it selects on the evaluation split, so it has no validation share)."""
    protocol = lp["protocol"]
    kwargs = {"protocol": protocol, **{k: lp[k] for k in LINEAR_PROBE_KEYS[protocol]}}
    if protocol == "aloe_code":
        kwargs["aloe_code"] = dict(lp["aloe_code"])
    return kwargs


def feature_layout(lp: Mapping[str, Any]) -> dict[str, Any]:
    """The feature caches' global layout (``run_features``' ``last_n`` and ``avgpool``) that the
    linear probe of config ``evaluation.linear_probe`` reads: every layout of DINOv2's
    n_last_blocks x avgpool grid for ``dinov2``, ``pooler_output`` alone for ``aloe_code``."""
    if lp["protocol"] == "dinov2":
        return cache_layout(lp["n_last_blocks"], lp["avgpool"])
    return {"last_n": 1, "avgpool": False}


def gridpg_kwargs(gridpg: Mapping[str, Any]) -> dict[str, Any]:
    """``run_gridpg``'s protocol settings from config ``evaluation.gridpg``: the protocol and the
    confidence threshold it reads (``threshold`` for resize, ``sliding_threshold`` for the
    authors' sliding_window), so a change of the other one reruns nothing."""
    key = "sliding_threshold" if gridpg["protocol"] == "sliding_window" else "threshold"
    return {"protocol": gridpg["protocol"], "threshold": gridpg[key], "num_grids": gridpg["num_grids"]}
