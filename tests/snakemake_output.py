"""What a Snakemake run or dry run printed: its 'Job stats' table and its job blocks.

Test helper, importable from every test folder (pytest puts ``tests/`` on sys.path for the
top-level conftest.py).
"""

from __future__ import annotations

import re

NOTHING_TO_DO = "Nothing to be done"


class UnreadableOutputError(ValueError):
    """Snakemake's output holds neither a 'Job stats' table nor "Nothing to be done"."""


def job_counts(output: str) -> dict[str, int]:
    """Jobs per rule in the first 'Job stats' table of ``output``; {} only when Snakemake printed
    "Nothing to be done". Anything else (an error message, a table whose rows do not add up to its
    total) raises UnreadableOutputError, so an empty plan is never read from output it cannot parse."""
    if "Job stats:" not in output:
        if NOTHING_TO_DO in output:
            return {}
        raise UnreadableOutputError(f"no 'Job stats' table and no {NOTHING_TO_DO!r} in:\n{output[-3000:]}")
    counts, total = {}, None
    for line in output.split("Job stats:", 1)[1].splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) == "total":
            total = int(m.group(2))
            break
        if m:
            counts[m.group(1)] = int(m.group(2))
    if not counts or total != sum(counts.values()):
        raise UnreadableOutputError(f"'Job stats' rows {counts} do not add up to its total {total}:\n{output[-3000:]}")
    return counts


def job_blocks(output: str) -> list[dict]:
    """The jobs a Snakemake run or dry run printed, in order: rule, jobid, resources (name -> text);
    and the jobids in the order their 'Finished jobid' lines came, under the key 'finished'."""
    jobs, current = [], None
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            current = {"rule": m.group(1), "resources": {}}
            jobs.append(current)
        elif current is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "jobid":
                current["jobid"] = int(value)
            elif key == "resources":
                current["resources"] = dict(item.partition("=")[::2] for item in value.split(", "))
        else:
            current = None
        if m := re.match(r"^Finished jobid: (\d+)", line):
            jobs.append({"finished": int(m.group(1))})
    return jobs
