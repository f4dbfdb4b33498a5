"""Per-stage resources from config: validation, mapping to submitit, escalation after OOM/timeout.

A ``resources`` block in config is a flat dict with these keys (all optional):

==========================  =============================================================
key                         meaning (submitit parameter it becomes)
==========================  =============================================================
partition, account, qos,    sbatch --partition/--account/--qos/--constraint
constraint                  (``slurm_partition``, ``slurm_account``, ...)
nodes, gpus_per_node,       same-named AutoExecutor parameters
tasks_per_node,
cpus_per_task
mem_gb                      memory per node in GB (``mem_gb`` -> sbatch --mem)
timeout_min                 wall time in minutes (``timeout_min`` -> sbatch --time)
name                        job name (``name`` -> sbatch --job-name)
additional_parameters       extra sbatch flags, e.g. {"reservation": "r1"}
                            (``slurm_additional_parameters``)
setup                       shell lines run in the sbatch script before the job
                            (``slurm_setup``), e.g. ["module load cuda"]
array_parallelism           at most this many array tasks run at once
                            (``slurm_array_parallelism``; local executor: processes)
signal_delay_s              SLURM signals the job (USR2) this many seconds before its time
                            limit, so it can checkpoint (``slurm_signal_delay_s``, default 90)
max_num_timeout             requeues allowed for Checkpointable jobs on timeout/preemption
                            (executor constructor ``max_num_timeout``)
max_attempts                launcher: submissions per call after OOM/timeout (default 3)
escalation_factor           launcher: mem_gb and timeout_min multiply by this on every
                            OOM/timeout failure (default 2.0)
max_mem_gb, max_timeout_min launcher: caps for the escalation
where                       workflow: ``cluster`` (default: a job) or ``submit_host`` (the rule
                            runs the stage in its own process on the host that runs Snakemake,
                            no sbatch: for internet-bound work where compute nodes have none)
status_interval_s           launcher: seconds between the shared squeue polls of all waiting
                            processes (default 60; ``aloe.launch.poller``); set it in ``cluster``
status_backoff_max_s        launcher: longest wait between polls while squeue fails (default 600)
pack_work_min               launcher: pack this stage's calls (``aloe.launch.pack``): an
                            allocation runs several calls of equal resources, until their
                            expected work reaches this many minutes (absent: no packing)
pack_max_work_min           launcher: at most this much expected work per allocation
                            (default: half of timeout_min)
pack_wait_s                 launcher: a pack below pack_work_min goes out once no new call
                            has come for this long (default 120): nothing else is ready
pack_local                  launcher: pack on the local executor too (default false: packing
                            is for SLURM, where it saves allocations; a local machine has none
                            to save, and a pack runs its calls one after another)
expected_min                launcher: expected minutes of one call where no measured
                            throughput gives one (``aloe.launch.estimate``; default 1)
==========================  =============================================================
"""

from __future__ import annotations

import math
from typing import Any, Mapping

RESOURCE_KEYS: dict[str, type | tuple[type, ...]] = {
    "partition": str,
    "account": str,
    "qos": str,
    "constraint": str,
    "name": str,
    "nodes": int,
    "gpus_per_node": int,
    "tasks_per_node": int,
    "cpus_per_task": int,
    "mem_gb": (int, float),
    "timeout_min": (int, float),
    "additional_parameters": dict,
    "setup": list,
    "array_parallelism": int,
    "signal_delay_s": int,
    "max_num_timeout": int,
    "max_attempts": int,
    "escalation_factor": (int, float),
    "max_mem_gb": (int, float),
    "max_timeout_min": (int, float),
    "where": str,
    "status_interval_s": (int, float),
    "status_backoff_max_s": (int, float),
    "pack_work_min": (int, float),
    "pack_max_work_min": (int, float),
    "pack_wait_s": (int, float),
    "pack_local": bool,
    "expected_min": (int, float),
}
WHERE = ("cluster", "submit_host")
_SLURM_ONLY = ("partition", "account", "qos", "constraint", "additional_parameters", "setup")
_GENERIC = ("name", "nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "mem_gb")
DEFAULT_TIMEOUT_MIN = 60.0


def check_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    """Return a plain-dict copy of ``resources``; raise ValueError naming any bad key or value."""
    unknown = sorted(set(resources) - set(RESOURCE_KEYS))
    if unknown:
        raise ValueError(f"resources: unknown key(s) {unknown}; allowed keys: {sorted(RESOURCE_KEYS)}")
    for key, value in resources.items():
        expected = RESOURCE_KEYS[key]
        if value is None:
            continue
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ValueError(f"resources.{key}: expected {_type_name(expected)}, got {value!r}")
        if isinstance(value, (int, float)) and value <= 0 and key != "max_num_timeout":
            raise ValueError(f"resources.{key}: must be positive, got {value!r}")
    if resources.get("where", "cluster") not in WHERE:
        raise ValueError(f"resources.where: expected one of {list(WHERE)}, got {resources['where']!r}")
    if resources.get("escalation_factor", 2.0) < 1:
        raise ValueError(f"resources.escalation_factor: must be >= 1, got {resources['escalation_factor']!r}")
    for key in ("setup",):
        if resources.get(key) is not None and not all(isinstance(s, str) for s in resources[key]):
            raise ValueError(f"resources.{key}: expected a list of strings, got {resources[key]!r}")
    return {k: v for k, v in resources.items() if v is not None}


def executor_arguments(resources: Mapping[str, Any], cluster: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Map checked resources to (AutoExecutor constructor kwargs, update_parameters kwargs).

    ``cluster`` is submitit's executor name ("slurm" or "local"). SLURM wants whole minutes
    (AutoExecutor asserts an int ``timeout_min``); the local executor accepts fractions, passed
    as ``local_timeout_min`` because AutoExecutor only type-checks unprefixed names.
    """
    res = check_resources(resources)
    ctor: dict[str, Any] = {}
    if "max_num_timeout" in res:
        ctor[f"{cluster}_max_num_timeout"] = res["max_num_timeout"]
    params: dict[str, Any] = {k: res[k] for k in _GENERIC if k in res}
    timeout = float(res.get("timeout_min", DEFAULT_TIMEOUT_MIN))
    if cluster == "slurm":
        params["timeout_min"] = int(math.ceil(timeout))
    else:
        params[f"{cluster}_timeout_min"] = timeout
    for key in _SLURM_ONLY:
        if key in res:
            params[f"slurm_{key}"] = res[key]
    if "signal_delay_s" in res:
        params["slurm_signal_delay_s"] = res["signal_delay_s"]
    if "array_parallelism" in res:
        params["slurm_array_parallelism"] = res["array_parallelism"]
    return ctor, params


def escalate(resources: Mapping[str, Any], failures: int) -> dict[str, Any]:
    """Resources after ``failures`` OOM/timeout failures: mem_gb and timeout_min times factor**failures.

    Capped by ``max_mem_gb`` / ``max_timeout_min`` when given. A missing ``mem_gb`` stays missing
    (the cluster default applies; nothing to multiply), a missing ``timeout_min`` starts from
    the launcher default.
    """
    res = dict(resources)
    if failures <= 0:
        return res
    factor = float(res.get("escalation_factor", 2.0)) ** failures
    if "mem_gb" in res:
        res["mem_gb"] = _capped(res["mem_gb"] * factor, res.get("max_mem_gb"))
    res["timeout_min"] = _capped(
        float(res.get("timeout_min", DEFAULT_TIMEOUT_MIN)) * factor, res.get("max_timeout_min")
    )
    return res


def status_settings(resources: Mapping[str, Any]) -> dict[str, float]:
    """``aloe.launch.poller.SlurmStatus`` keyword arguments from checked resources."""
    names = {"status_interval_s": "interval_s", "status_backoff_max_s": "backoff_max_s"}
    return {arg: float(resources[key]) for key, arg in names.items() if key in resources}


def runs_on_submit_host(resources: Mapping[str, Any]) -> bool:
    return resources.get("where", "cluster") == "submit_host"


def job_claim(resources: Mapping[str, Any]) -> dict[str, int]:
    """What one job of a resource block holds on the cluster, as Snakemake ``resources`` of the rule
    that waits for it, so that ``--resources gpus=N`` (``cpus=``, ``mem_mb=``) caps what the workflow
    holds at once: ``gpus`` = nodes x gpus_per_node (0 without gpus_per_node), ``cpus`` = nodes x
    tasks_per_node x cpus_per_task (1 each when absent, as sbatch counts), ``mem_mib`` = nodes x
    mem_gb x 1024 (sbatch --mem's G are GiB; Snakemake derives ``mem_mb`` from it; left out
    without mem_gb: the cluster default applies). A stage that runs on the submit host
    (``where: submit_host``) holds nothing on the cluster."""
    res = check_resources(resources)
    if runs_on_submit_host(res):
        return {"gpus": 0, "cpus": 0}
    nodes = res.get("nodes", 1)
    claim = {"gpus": nodes * res.get("gpus_per_node", 0),
             "cpus": nodes * res.get("tasks_per_node", 1) * res.get("cpus_per_task", 1)}
    if "mem_gb" in res:
        claim["mem_mib"] = int(math.ceil(nodes * res["mem_gb"] * 1024))
    return claim


def _capped(value: float, cap: float | None) -> float:
    value = min(value, cap) if cap is not None else value
    return int(value) if float(value).is_integer() else round(value, 3)


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(t.__name__ for t in types)
