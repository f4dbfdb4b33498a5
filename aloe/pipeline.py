"""The bridge between Snakemake rules and aloe's plain functions.

Every rule names one function (``params.fn``, "module:function") and passes exactly the config
values it uses (``params.kwargs``); its named inputs and outputs become keyword arguments of
the same names. Rules with a ``params.launch`` block run the function as a job through the
submitit launcher (SLURM, or in-process when there is no SLURM); the others run it directly.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping


def import_callable(path: str) -> Callable[..., Any]:
    module, sep, name = path.partition(":")
    if not sep or not module.startswith("aloe."):
        raise ValueError(f"stage function must be 'aloe.module:function', got {path!r}")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"{path!r} is not a callable in {module}")
    return fn


@contextlib.contextmanager
def log_to(path: str | None) -> Iterator[None]:
    """Send this job's stdout, stderr and logging to the rule's log file."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=f)
            raise
        finally:
            root.removeHandler(handler)


def run_stage(fn: str, kwargs: Mapping[str, Any], *, launch: Mapping[str, Any] | None = None,
              log: str | None = None) -> Any:
    """Call ``fn(**kwargs)``, through the launcher when ``launch`` is given.

    ``launch``: {"output": path the job produces, "resources": the stage's resource block,
    "executor": auto | slurm | local | inprocess, "log_dir": where job logs go,
    "detach_on_interrupt": bool, "checkpointable": bool}. With ``checkpointable``, ``fn`` is a
    factory that returns a ``submitit.helpers.Checkpointable`` job, which is submitted as is so
    that SLURM preemption and time limits requeue it; the factory and its arguments identify the
    call, so a restart re-attaches only to a job built from the same config.
    """
    func = import_callable(fn)
    with log_to(log):
        if launch is None:
            return func(**kwargs)
        from aloe.launch import launch as submit
        from aloe.launch.record import call_key

        call = call_key(func, kwargs)
        if launch.get("checkpointable", False):
            func, kwargs = func(**kwargs), {}
        return submit(func, dict(kwargs), output=launch["output"], resources=launch["resources"],
                      log_dir=launch["log_dir"], executor=launch["executor"],
                      detach_on_interrupt=launch.get("detach_on_interrupt", False), call=call)


def run_snakemake_job(smk: Any) -> Any:
    """Entry point of ``workflow/scripts/stage.py``: unpack the rule and call :func:`run_stage`."""
    params = dict(smk.params.items())
    kwargs = dict(params.get("kwargs", {}))
    for name, value in list(smk.input.items()) + list(smk.output.items()):
        if name in kwargs:
            raise ValueError(f"rule {smk.rule}: {name!r} is both a file and a config value")
        kwargs[name] = value
    launch = params.get("launch")
    if launch is not None:
        # Named after the rule, so squeue / sacct show which stage a job belongs to.
        resources = dict(launch["resources"])
        resources.setdefault("name", f"aloe.{smk.rule}")
        launch = dict(launch, output=smk.output[0], resources=resources)
    log = smk.log[0] if len(smk.log) else None
    try:
        return run_stage(params["fn"], kwargs, launch=launch, log=log)
    except Exception as err:  # the log holds the traceback; the console gets the one-line reason
        print(f"rule {smk.rule} failed: {type(err).__name__}: {err}" + (f" (log: {log})" if log else ""),
              file=sys.stderr)
        raise
