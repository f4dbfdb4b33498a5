"""What the pipeline has submitted, and a way to cancel all of it.

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
    parser.add_argument("command", choices=("status", "cancel"))
    parser.add_argument("results", nargs="?", default="results", type=Path, help="the results folder (default: results)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        parser.error(f"{args.results} is not a folder")
    return {"status": status, "cancel": cancel}[args.command](args.results)


if __name__ == "__main__":
    sys.exit(main())
