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

from aloe.launch.dag import dag_jobs, job_call
from aloe.pipeline import import_callable, launch_settings


def main(preset: str, configfiles: list[str]) -> None:
    counts, problems, signatures = Counter(), [], {}
    with dag_jobs(config={"preset": preset}, configfiles=configfiles, forceall=True) as (config, jobs):
        for job in jobs:
            counts[job.rule.name] += 1
            try:
                call = job_call(job)
                if call is None:
                    continue
                fn, kwargs, launch = call
                if fn not in signatures:
                    signatures[fn] = inspect.signature(import_callable(fn))
                signatures[fn].bind(**kwargs)
                if launch is not None:
                    launch_settings(config, launch["stage"], job.rule.name)
            except Exception as err:
                problems.append(f"{job.rule.name} {sorted(job.wildcards.items())}: {type(err).__name__}: {err}")
    print(json.dumps({"counts": dict(counts), "problems": problems}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
