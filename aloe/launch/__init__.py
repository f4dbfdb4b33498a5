"""Job launcher: run plain ``aloe`` functions as SLURM/local jobs through submitit.

See ``launcher`` for behaviour (re-attach, cancel, retries, arrays), ``resources`` for the
config keys and ``record`` for the job record kept per output (in the log folder); ``plan``
(``python -m aloe.launch plan``) for what a target would ask of the cluster, from the workflow's
DAG (``dag``) and the GPU-hours estimate (``estimate``).
"""

from aloe.launch.launcher import LaunchError, launch, launch_many, make_executor, resolve_executor
from aloe.launch.record import JobRecord, read_record, record_path
from aloe.launch.resources import RESOURCE_KEYS, check_resources, escalate, executor_arguments

__all__ = [
    "RESOURCE_KEYS",
    "JobRecord",
    "LaunchError",
    "check_resources",
    "escalate",
    "executor_arguments",
    "launch",
    "launch_many",
    "make_executor",
    "read_record",
    "record_path",
    "resolve_executor",
]
