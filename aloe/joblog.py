"""Rule logs a person can follow: every stage writes to its rule's log file, in one format, a line
when it starts (what, where, on which device), its progress (``aloe.progress``) and a summary line
when it ends (``aloe.stage_summaries``), e.g.
``linear_probe demo_vit/aloe/shapes: top-1 71.50 at lr 0.025, 12.5k it, 14 s``.

The stage's process does this wherever it runs (the rule's own process, a local submitit job or a
SLURM job: ``aloe.pipeline.StageCall``), appending to the same file as the rule's process, which
logs the launcher's lines (submitted, re-attached, ...). Third-party progress bars are switched
off there and known-harmless warnings dropped (:func:`quiet_environment`, :func:`quiet_libraries`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from aloe.progress import duration

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_log = logging.getLogger("aloe.stage")
_writing: set[str] = set()  # the log files this process already writes to (an in-process job's rule log)

# Environment of a job, set before the stage's modules are imported (a value set already is kept).
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "warning"}
# Warnings known to be harmless, dropped from rule logs:
KNOWN_HARMLESS = (
    # transformers 5 diffs every SigLIP config it saves or loads against a default SiglipTextConfig(),
    # whose own bos/eos ids (49406/49407) lie outside its own default 32,000-token vocabulary; the
    # config being diffed is not at fault (the demo's ids are 0 and 2 of its word vocabulary)
    re.compile(r"_token_id must be `None` or an integer within the vocabulary \(between 0 and 31999\), "
               r"got 4940[67]"),
)


class _PlainFormatter(logging.Formatter):
    """``LOG_FORMAT`` without terminal colour codes (transformers bolds its load reports)."""

    def format(self, record: logging.LogRecord) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", super().format(record))


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in KNOWN_HARMLESS)


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Send this process's stdout, stderr, logging and warnings to the log file ``path``, appending.
    Nested calls for a file already written to change nothing."""
    if path is None or os.path.abspath(path) in _writing:
        yield
        return
    key = os.path.abspath(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(_PlainFormatter(LOG_FORMAT))
        handler.addFilter(_DropHarmless())
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        _writing.add(key)
        try:
            yield
        except BaseException:
            traceback.print_exc(file=f)
            raise
        finally:
            _writing.discard(key)
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(level)


def quiet_environment() -> None:
    """Before the stage's imports: no hub or transformers progress bars."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def quiet_libraries() -> None:
    """After the stage's imports: transformers' messages go through ``logging`` (this log's format
    and filter) at warning level at most, without its own handler or progress bars."""
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if hf_logging.get_verbosity() < logging.WARNING:  # a stricter TRANSFORMERS_VERBOSITY stays
            hf_logging.set_verbosity_warning()
        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()


def stage_label(rule: str, wildcards: Mapping[str, Any] | None = None) -> str:
    """``linear_probe demo_vit/aloe/shapes``: the rule and its wildcard values."""
    values = "/".join(str(v) for v in (wildcards or {}).values())
    return f"{rule} {values}" if values else rule


def where() -> str:
    """This host and process, and the SLURM job when there is one."""
    text = f"{socket.gethostname()} (pid {os.getpid()}"
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        text += f", SLURM job {job}" + (f"_{task}" if task and os.environ.get("SLURM_ARRAY_JOB_ID") else "")
    return text + ")"


def device_of(kwargs: Mapping[str, Any]) -> str:
    """The device the stage runs on: its ``device`` argument (an alignment run's ``train.device``),
    ``auto`` resolved as ``aloe.device.resolve_device`` does; a stage without one runs on the CPU."""
    requested = kwargs.get("device")
    if requested is None and isinstance(kwargs.get("train"), Mapping):
        requested = kwargs["train"].get("device")
    torch = sys.modules.get("torch")
    if torch is None:
        return "cpu"
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    requested = str(requested or "cpu")
    if requested.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(requested).index or 0
        return f"{requested} ({torch.cuda.get_device_name(index)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})" if requested == "cpu" else requested


def logged_call(label: str, fn: str, kwargs: Mapping[str, Any], outputs: Sequence[str],
                call: Callable[[], Any]) -> Any:
    """``call()``, between the stage's start line and its summary (or failure) line."""
    from aloe.stage_summaries import summarize

    shown = f"; output {outputs[0]}" + (f" (+{len(outputs) - 1} more)" if len(outputs) > 1 else "") if outputs else ""
    _log.info("%s: start %s on %s, device %s%s", label, fn, where(), device_of(kwargs), shown)
    started = time.monotonic()
    try:
        result = call()
    except Exception as err:
        _log.error("%s: failed after %s: %s: %s", label, duration(time.monotonic() - started), type(err).__name__, err)
        raise
    except BaseException as err:
        _log.warning("%s: interrupted after %s (%s)", label, duration(time.monotonic() - started), type(err).__name__)
        raise
    _log.info("%s: %s, %s", label, summarize(fn, result, kwargs, outputs), duration(time.monotonic() - started))
    return result
