"""What the pipeline will submit, what it has submitted, and a way to cancel all of it.

    python -m aloe.launch plan [TARGET ...] [--config preset=paper] [--configfile=F ...] [--csv PATH]
                                             # jobs, submissions and GPU-hours per stage (aloe.launch.plan)
    python -m aloe.launch status [RESULTS]   # one line per job record under RESULTS (default: results)
    python -m aloe.launch cancel [RESULTS]   # cancel every job still in flight (one scancel), mark it cancelled

Job records live in ``RESULTS/jobs/<stage>/records/`` (see ``aloe.launch.record``). Only the
jobs these records name are touched, never other jobs of the same user.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from aloe.io import write_json
from aloe.launch import jobs
from aloe.launch.record import RECORD_SUFFIX, RECORDS_DIR, JobRecord, read_record_file


def find_records(root: Path) -> list[tuple[Path, JobRecord]]:
    found = []
    for path in sorted(root.rglob(f"{RECORDS_DIR}/*{RECORD_SUFFIX}")):
        record = read_record_file(path)
        if record is not None:
            found.append((path, record))
    return found


def status(root: Path) -> int:
    records = find_records(root)
    for _, r in records:
        print(f"{r.state:<10} {r.cluster:<6} {r.job_id:<12} attempt {r.attempt}  {r.output}")
    in_flight = sum(r.state == "submitted" for _, r in records)
    print(f"{len(records)} job record(s), {in_flight} in flight", file=sys.stderr)
    return 0


def cancel(root: Path) -> int:
    live = [(p, r) for p, r in find_records(root) if r.state == "submitted"]
    jobs.cancel([r for _, r in live])
    for path, r in live:
        r.end_attempt("cancelled", state="cancelled")
        write_json(path, dataclasses.asdict(r))
        print(f"cancelled {r.cluster} job {r.job_id}  {r.output}")
    print(f"{len(live)} job(s) cancelled", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aloe.launch", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("status", "cancel"):
        sub = commands.add_parser(name)
        sub.add_argument("results", nargs="?", default="results", type=Path,
                         help="the results folder (default: results)")
    sub = commands.add_parser("plan", description="Per stage: jobs, submissions, allocations, GPUs per job, requested "
                              "and expected GPU-hours of what Snakemake would run for TARGETs. Run from the workflow "
                              "folder.")
    sub.add_argument("targets", nargs="*", help="Snakemake targets (files or rules; default: the whole study)")
    sub.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE", help="as for Snakemake, e.g. preset=paper")
    sub.add_argument("--configfile", nargs="+", default=[], metavar="FILE",
                     help="as for Snakemake (use --configfile=F before targets)")
    sub.add_argument("--csv", type=Path, help="also write the table as CSV here")
    sub.add_argument("--snakefile", default="Snakefile")
    args = parser.parse_args(argv)
    if args.command == "plan":
        from aloe.launch.dag import parse_config_entries
        from aloe.launch.plan import run_plan

        try:
            parse_config_entries(args.config)
        except ValueError as err:
            parser.error(f"--config: {err}; put targets before --config, or write --config=KEY=VALUE")
        from snakemake.exceptions import RuleException, WorkflowError

        try:
            print(run_plan(args.targets, args.config, args.configfile, args.csv, args.snakefile), end="")
        except (WorkflowError, RuleException, ValueError, KeyError) as err:  # a bad target, config or schema violation
            print(f"plan: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        return 0
    if not args.results.is_dir():
        parser.error(f"{args.results} is not a folder")
    return {"status": status, "cancel": cancel}[args.command](args.results)


if __name__ == "__main__":
    sys.exit(main())
