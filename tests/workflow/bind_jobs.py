"""Build the whole DAG of one preset (no job runs) and bind every job to its stage function.

Run as ``python bind_jobs.py <preset> [configfile ...]`` from the repository root; prints one JSON
object: jobs per rule and every job whose kwargs and named files do not bind to the signature of
the aloe function its rule names (the same merge as aloe.pipeline.run_snakemake_job).
"""

from __future__ import annotations

import inspect
import json
import sys
from collections import Counter
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

from aloe.pipeline import import_callable, launch_settings


def stage_call(job) -> tuple[str, dict] | None:
    params = dict(job.params.items())
    if "fn" not in params:
        return None
    kwargs = dict(params.get("kwargs", {}))
    for name, value in list(job.input.items()) + list(job.output.items()):
        if name in kwargs:
            raise ValueError(f"{name!r} is both a file and a config value")
        kwargs[name] = value
    return params["fn"], kwargs


def main(preset: str, configfiles: list[str]) -> None:
    counts, problems, signatures = Counter(), [], {}
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(config={"preset": preset}, configfiles=[Path(f) for f in configfiles]),
            snakefile=Path("Snakefile"),
        )
        dag_api = workflow_api.dag(dag_settings=DAGSettings(forceall=True))
        workflow = dag_api.workflow_api._workflow  # the DAG itself has no public API
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        for job in workflow.dag.jobs:
            counts[job.rule.name] += 1
            try:
                call = stage_call(job)
                if call is None:
                    continue
                fn, kwargs = call
                if fn not in signatures:
                    signatures[fn] = inspect.signature(import_callable(fn))
                signatures[fn].bind(**kwargs)
                launch = dict(job.params.items()).get("launch")
                if launch is not None:
                    launch_settings(workflow.config, launch["stage"], job.rule.name)
            except Exception as err:  # noqa: BLE001 - every failure is reported with its job
                problems.append(f"{job.rule.name} {sorted(job.wildcards.items())}: {type(err).__name__}: {err}")
    print(json.dumps({"counts": dict(counts), "problems": problems}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
