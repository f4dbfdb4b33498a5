"""One waiting process, as Snakemake runs one per rule: ``aloe.launch.launch`` of a job function,
printing its outcome as the last line of stdout ({"result": ...} or {"error": ...}). The launcher
and SLURM tests start several of these against one status file (and spool).

    python tests/launch_waiter.py MODULE FN KWARGS_JSON OUTPUT RESOURCES_JSON LOG_DIR STATUS_FILE
                                  EXECUTOR [EXPECTED_MIN]

MODULE (a job-function module of the tests) must be on PYTHONPATH, for the jobs too.
"""

import importlib
import json
import logging
import sys

from aloe.launch import LaunchError, launch

logging.basicConfig(level=logging.INFO)  # the launcher's messages ("re-attached to job N") on stderr
module, fn, kwargs, output, resources, log_dir, status_file, executor, *minutes = sys.argv[1:]
try:
    result = {"result": launch(getattr(importlib.import_module(module), fn), json.loads(kwargs), output=output,
                               resources=json.loads(resources), log_dir=log_dir, executor=executor,
                               status_file=status_file, poll_s=0.2,
                               expected_min=float(minutes[0]) if minutes else None)}
except LaunchError as err:
    result = {"error": str(err)}
print(json.dumps(result))
