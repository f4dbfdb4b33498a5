"""The workflow's DAG without running anything: which jobs a Snakemake command would run.

``dag_jobs`` builds the DAG through Snakemake's API, as ``snakemake -n`` does (same targets,
``--config`` and ``--configfile`` merging, same rerun decisions: jobs whose outputs are complete
and current are left out unless ``forceall``) and yields the workflow config and the jobs to run.
The DAG itself has no public API: this uses the Workflow's ``_prepare_dag`` / ``_build_dag``, the
two steps of Snakemake's own dry run (Snakemake 9).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence


def job_call(job: Any) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """(stage function, its keyword arguments, the launch block or None) of a Snakemake job, as
    ``aloe.pipeline.run_snakemake_job`` calls it; None for a rule that names no aloe function."""
    from aloe.pipeline import stage_kwargs

    params = dict(job.params.items())
    if "fn" not in params:
        return None
    return params["fn"], stage_kwargs(job.rule.name, params, job.input, job.output), params.get("launch")


def parse_config_entries(entries: Sequence[str]) -> dict[str, Any]:
    """``--config KEY=VALUE ...`` as Snakemake reads it."""
    from snakemake.cli import parse_config

    return parse_config(list(entries))


@contextlib.contextmanager
def dag_jobs(targets: Sequence[str] = (), *, config: Mapping[str, Any] | None = None,
             configfiles: Sequence[str | Path] = (), snakefile: str | Path = "Snakefile",
             forceall: bool = False) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """(the workflow config, the Snakemake jobs that would run) for ``targets`` (the default
    target when empty). Run from the workflow's working directory; nothing is locked or written
    beyond Snakemake's ``.snakemake`` folder. The jobs are Snakemake ``Job`` objects, valid inside
    the ``with`` block (``.rule.name``, ``.wildcards``, ``.params``, ``.input``, ``.output``)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(config=dict(config or {}), configfiles=[Path(f) for f in configfiles]),
            snakefile=Path(snakefile),
        )
        dag_api = workflow_api.dag(dag_settings=DAGSettings(targets=set(targets), forceall=forceall))
        workflow = dag_api.workflow_api._workflow
        workflow._prepare_dag(forceall=forceall, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        jobs = sorted(workflow.dag.needrun_jobs(), key=lambda j: (j.rule.name, str(sorted(j.wildcards.items()))))
        yield workflow.config, jobs
