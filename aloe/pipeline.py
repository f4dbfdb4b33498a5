"""The bridge between Snakemake rules and aloe's plain functions.

Every rule names one function (``params.fn``, "module:function") and passes exactly the config
values it uses (``params.kwargs``); its named inputs and outputs become keyword arguments of
the same names. Rules with a ``params.launch`` block run the function as a job through the
submitit launcher (SLURM, or in-process when there is no SLURM); the others run it directly.

A launched stage is submitted by name (:class:`StageCall`): the rule process that submits the
job and waits for it never imports the stage's module, so it stays small (no torch): with
hundreds of jobs in flight, the submit host holds one such process per job.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import submitit

from aloe.joblog import log_to, logged_call, quiet_environment, quiet_libraries, stage_label


def check_stage_name(path: str) -> tuple[str, str]:
    """('aloe.module', 'function') of a stage name, checked without importing the module."""
    module, sep, name = path.partition(":")
    if not sep or not module.startswith("aloe.") or not name.isidentifier():
        raise ValueError(f"stage function must be 'aloe.module:function', got {path!r}")
    # Looked up as a file: find_spec() would import the parent packages (and with them torch).
    package = Path(__file__).resolve().parent
    parts = module.split(".")[1:]
    target = package.joinpath(*parts)
    found = target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()
    if not found:
        raise ValueError(f"stage function {path!r}: no module {module}")
    return module, name


def import_callable(path: str) -> Callable[..., Any]:
    module, name = check_stage_name(path)
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"{path!r} is not a callable in {module}")
    return fn


@dataclasses.dataclass
class StageCall:
    """``fn(**kwargs)`` by name: picklable without importing ``fn``'s module; imported in the job.

    Wherever it runs, the call appends to the rule's ``log`` (an absolute path): a start line, the
    stage's own lines and a summary line, under ``label`` (``aloe.joblog``). After ``fn`` returns,
    the job keeps hard links of ``outputs`` in ``keep_dir`` (``aloe.launch.kept``)."""

    fn: str
    kwargs: dict[str, Any]
    outputs: list[str] = dataclasses.field(default_factory=list)
    keep_dir: str | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # set in the job before ``fn`` is imported
    label: str = ""
    log: str | None = None

    def __call__(self) -> Any:
        with log_to(self.log):
            os.environ.update(self.env)
            quiet_environment()
            target = import_callable(self.fn)
            quiet_libraries()
            result = logged_call(self.label or self.fn, self.fn, self.kwargs, self.outputs, lambda: self.run(target))
            if self.keep_dir is not None:
                from aloe.launch.kept import keep_outputs

                try:
                    keep_outputs(self.outputs, self.keep_dir)
                except OSError as err:  # e.g. outputs on another filesystem: a restart then reruns the job
                    logging.getLogger(__name__).warning("outputs not kept in %s: %s", self.keep_dir, err)
        return result

    def run(self, target: Callable[..., Any]) -> Any:
        return target(**self.kwargs)


class CheckpointableStage(StageCall, submitit.helpers.Checkpointable):
    """A stage whose function is a factory of a ``submitit.helpers.Checkpointable`` job (training).

    The job is built and run inside the SLURM job. On preemption or timeout submitit requeues this
    object; the next attempt builds the job afresh and it resumes from its own on-disk checkpoint.
    """

    def run(self, target: Callable[..., Any]) -> Any:
        job = target(**self.kwargs)
        if not isinstance(job, submitit.helpers.Checkpointable):
            raise TypeError(f"checkpointable stage {self.fn} returned {type(job).__name__}, not a Checkpointable")
        return job()

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self), *args, **kwargs)


def hub_environment(config: Mapping[str, Any], stage: str | None = None) -> dict[str, str]:
    """Environment of a stage (resource block ``stage``; None: a rule without one, which runs on the
    submit host) from the preset's ``hub`` block: ``cache_dir`` -> HF_HUB_CACHE (a shared cache);
    ``offline: true`` -> HF_HUB_OFFLINE=1 in every stage (only the cache is read); ``offline:
    cluster`` -> HF_HUB_OFFLINE=1 only in stages that run on the cluster, while the submit host's
    stages (``where: submit_host``: the teacher downloads) fill the cache online. Read when a stage
    runs, like resources, so changing it never reruns a finished stage."""
    from aloe.launch.resources import runs_on_submit_host

    hub = config[config["preset"]].get("hub", {})
    env = {}
    if hub.get("cache_dir"):
        env["HF_HUB_CACHE"] = str(Path(hub["cache_dir"]).expanduser().resolve())
    offline = hub.get("offline", False)
    if offline == "cluster":
        offline = stage is not None and not runs_on_submit_host(stage_resources(config, stage))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def run_stage(fn: str, kwargs: Mapping[str, Any], *, launch: Mapping[str, Any] | None = None,
              log: str | None = None, env: Mapping[str, str] | None = None, label: str | None = None,
              outputs: Sequence[str] = ()) -> Any:
    """Call ``fn(**kwargs)``, through the launcher when ``launch`` is given.

    ``launch``: {"output": path the job produces, "resources": the stage's resource block,
    "executor": auto | slurm | local | inprocess, "log_dir": where job logs go,
    "detach_on_interrupt": bool, "status_file": the shared SLURM status answer (optional),
    "expected_min": the expected minutes of work, for a packed stage (optional),
    "checkpointable": bool, "outputs": every output of the rule (kept
    by the job for a restarted workflow, see ``aloe.launch.kept``)}. With ``checkpointable``, ``fn`` is a
    factory that returns a ``submitit.helpers.Checkpointable`` job, which runs as
    :class:`CheckpointableStage` so that SLURM preemption and time limits requeue it. The stage
    name and its arguments identify the call: a restart re-attaches only to a job of the same
    config. ``env`` (``hub_environment``) is set before ``fn``'s module is imported, in the job.
    ``log``: the rule's log file, which the call itself (:class:`StageCall`) and, for a launched one,
    this process (the launcher's lines) append to; ``label`` names the stage there (default ``fn``);
    ``outputs``: the files a stage run directly writes (a launched one: ``launch["outputs"]``).
    """
    env = dict(env or {})
    label = label or fn
    log = None if log is None else str(Path(log).absolute())  # the same file from the job's working directory
    if launch is None:
        return StageCall(fn, dict(kwargs), outputs=[str(o) for o in outputs], env=env, label=label, log=log)()
    with log_to(log):
        from aloe.launch import launch as submit
        from aloe.launch.kept import restore_outputs
        from aloe.launch.record import call_key, read_record

        check_stage_name(fn)
        kwargs = dict(kwargs)
        call = call_key(fn, kwargs)
        outputs = [str(o) for o in launch.get("outputs", [launch["output"]])]
        keep_dir = str(Path(launch["log_dir"]) / "kept" / call)
        stage_type = CheckpointableStage if launch.get("checkpointable", False) else StageCall
        job = stage_type(fn, kwargs, outputs=outputs, keep_dir=keep_dir, env=env, label=label, log=log)
        if restore_outputs(outputs, keep_dir):  # of a job that finished while no workflow recorded it
            done = read_record(launch["output"], launch["log_dir"])
            if done is not None and done.state == "succeeded" and done.call == call:
                logging.getLogger(__name__).info("job %s of this call finished before the workflow recorded it: "
                                                 "its kept outputs are used, nothing runs again", done.job_id)
                return None
        result = submit(job, {}, output=launch["output"], resources=launch["resources"], log_dir=launch["log_dir"],
                        executor=launch["executor"], detach_on_interrupt=launch.get("detach_on_interrupt", False),
                        call=call, status_file=launch.get("status_file"), expected_min=launch.get("expected_min"))
        return result  # the kept links stay until the workflow ends (aloe.launch.kept)


def stage_resources(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """The resources of one job of ``stage``: the preset's ``cluster`` keys under its
    ``resources.<stage>`` block."""
    study = config[config["preset"]]
    if stage not in study["resources"]:
        raise KeyError(f"no {config['preset']}.resources.{stage} block in the config")
    return {**study.get("cluster", {}), **study["resources"][stage]}


def rule_resources(config: Mapping[str, Any], stage: str) -> dict[str, int]:
    """Snakemake ``resources`` of a rule whose job uses the ``stage`` block (gpus, cpus, mem_mib;
    :func:`aloe.launch.resources.job_claim`)."""
    from aloe.launch.resources import job_claim

    return job_claim(stage_resources(config, stage))


def launch_settings(config: Mapping[str, Any], stage: str, rule: str) -> dict[str, Any]:
    """The launcher settings of a job-running rule, read from the workflow config when it runs:
    the preset's ``cluster`` keys under its ``resources.<stage>`` block, ``launcher`` options, and
    ``results/jobs/<stage>`` for job logs and records; every rule shares the SLURM status answer
    ``results/jobs/slurm_status.json`` (``aloe.launch.poller``). Jobs are named ``aloe.<rule>`` unless the
    resources name them, so squeue / sacct show which stage a job belongs to. A stage with
    ``where: submit_host`` runs in the rule's own process (executor ``inprocess``, no sbatch)."""
    from aloe.launch.resources import runs_on_submit_host

    study = config[config["preset"]]
    resources = stage_resources(config, stage)
    resources.setdefault("name", f"aloe.{rule}")
    executor = "inprocess" if runs_on_submit_host(resources) else study["launcher"]["executor"]
    return {"resources": resources, "executor": executor,
            "detach_on_interrupt": study["launcher"]["detach_on_interrupt"], "log_dir": f"results/jobs/{stage}",
            "status_file": "results/jobs/slurm_status.json"}


def job_minutes(config: Mapping[str, Any], fn: str, kwargs: Mapping[str, Any], wildcards: Mapping[str, str],
                resources: Mapping[str, Any]) -> float:
    """Expected minutes of one packed job (``aloe.launch.estimate.expected_minutes``); its backbone
    is (a student of) the ``{teacher}`` wildcard's teacher."""
    from aloe.launch.estimate import expected_minutes

    teacher = wildcards.get("teacher")
    source = config[config["preset"]]["teachers"].get(teacher, {}).get("source") if teacher else None
    return expected_minutes(fn, kwargs, source, resources)


def stage_kwargs(rule: str, params: Mapping[str, Any], inputs: Any, outputs: Any) -> dict[str, Any]:
    """The keyword arguments of a rule's stage function: ``params.kwargs`` plus its named input and
    output files (Snakemake ``Namedlist``s)."""
    kwargs = dict(params.get("kwargs", {}))
    for name, value in list(inputs.items()) + list(outputs.items()):
        if name in kwargs:
            raise ValueError(f"rule {rule}: {name!r} is both a file and a config value")
        kwargs[name] = value
    return kwargs


def run_snakemake_job(smk: Any) -> Any:
    """Entry point of ``workflow/scripts/stage.py``: unpack the rule and call :func:`run_stage`."""
    params = dict(smk.params.items())
    kwargs = stage_kwargs(smk.rule, params, smk.input, smk.output)
    launch = params.get("launch")
    if launch is not None:
        launch = dict(launch_settings(smk.config, launch["stage"], smk.rule),
                      checkpointable=launch.get("checkpointable", False), output=smk.output[0],
                      outputs=list(smk.output))
        if "pack_work_min" in launch["resources"]:
            launch["expected_min"] = job_minutes(smk.config, params["fn"], kwargs, dict(smk.wildcards.items()),
                                                 launch["resources"])
    log = smk.log[0] if len(smk.log) else None
    try:
        env = hub_environment(smk.config, params["launch"]["stage"] if launch is not None else None)
        return run_stage(params["fn"], kwargs, launch=launch, log=log, env=env,
                         label=stage_label(smk.rule, dict(smk.wildcards.items())), outputs=list(smk.output))
    except Exception as err:  # the log holds the traceback; the console gets the one-line reason
        print(f"rule {smk.rule} failed: {type(err).__name__}: {err}" + (f" (log: {log})" if log else ""),
              file=sys.stderr)
        raise
