"""The embedded demo's time budgets (issue 19): Table 2 within 15 min, everything within 30 min,
``--cores 2`` on this machine kind, measured from a fresh clone.

    python benchmarks/demo_budget.py --run [--workdir DIR]   # clone HEAD into DIR, run both targets, write
    python benchmarks/demo_budget.py --summarise DIR         # write the section from a clone already run

The two runs are ``snakemake --cores 2 results/tables/table2.tex`` and then ``snakemake --cores 2``
(every table, plot and the report) in the same clone, so the second run's time is what the rest
of the DAG adds; "everything" is their sum. Times come from the clone's own Snakemake logs (start
stamp in the file name, end = the log's last write), job counts from their "Finished jobid"
lines, per-stage sums from the rules' ``benchmark:`` files. The section between the markers below
and the summary row of issue 19 are rewritten; nothing here is edited by hand.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from readme_section import README, write_section

from aloe.tables.readme_block import machine

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- demo-budget:begin -->", "<!-- demo-budget:end -->"
TARGETS = (["results/tables/table2.tex"], [])
BUDGETS_MIN = (15.0, 30.0)
ENV = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")


def run(workdir: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(workdir)], check=True)
    for targets in TARGETS:
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *targets], cwd=workdir, env=ENV,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def snakemake_runs(workdir: Path) -> list[tuple[float, int]]:
    """(minutes, jobs finished) of each Snakemake invocation in the clone, in order."""
    runs = []
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log")):
        start = datetime.datetime.strptime(log.name.split(".snakemake")[0], "%Y-%m-%dT%H%M%S.%f")
        end = datetime.datetime.fromtimestamp(log.stat().st_mtime)
        jobs = len(re.findall(r"^Finished jobid", log.read_text(), flags=re.M))
        if jobs:
            runs.append(((end - start).total_seconds() / 60, jobs))
    return runs


def stage_seconds(workdir: Path) -> dict[str, tuple[int, float]]:
    """Rule family (results/benchmarks/<family>/...) -> (jobs, summed job wall seconds)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for tsv in (workdir / "results" / "benchmarks").rglob("*.tsv"):
        rel = tsv.relative_to(workdir / "results" / "benchmarks").parts
        family = "/".join(rel[:2]) if rel[0] == "eval" else rel[0]
        sums[family].append(float(tsv.read_text().splitlines()[1].split("\t")[0]))
    return {k: (len(v), sum(v)) for k, v in sorted(sums.items(), key=lambda kv: -sum(kv[1]))}


def summarise(workdir: Path, note: str = "") -> tuple[str, tuple[float, float | None]]:
    runs = snakemake_runs(workdir)
    if not runs:
        raise SystemExit(f"{workdir}: no finished Snakemake run in .snakemake/log")
    commit = subprocess.run(["git", "-C", str(workdir), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    day = datetime.date.fromtimestamp((workdir / ".snakemake" / "log").stat().st_mtime).isoformat()
    lines = [BEGIN, "", f"Fresh clone of commit `{commit}`, {day}, {machine()}"
             + (f"; {note}" if note else "") + ":", "",
             "| run | jobs | wall | budget | met |", "|---|---|---|---|---|"]
    (t2, j2) = runs[0]
    rows = [("`snakemake --cores 2 results/tables/table2.tex`", t2, j2, BUDGETS_MIN[0])]
    total = None
    if len(runs) > 1:  # the rest of the DAG ran too
        rest, jr = runs[1]
        total = t2 + rest
        rows += [("then `snakemake --cores 2` (the rest)", rest, jr, None),
                 ("everything (sum)", total, j2 + jr, BUDGETS_MIN[1])]
    for label, minutes, jobs, budget in rows:
        met = "" if budget is None else ("yes" if minutes <= budget else "no")
        lines.append(f"| {label} | {jobs} | {minutes:.1f} min | {'' if budget is None else f'{budget:g} min'} "
                     f"| {met} |")
    if total is None:
        lines.append("| `snakemake --cores 2` (everything) | | not measured | 30 min | |")
    lines += ["", "Summed job wall time per stage (`results/benchmarks/`):", "",
              "| stage | jobs | seconds |", "|---|---|---|"]
    lines += [f"| {k} | {n} | {s:.0f} |" for k, (n, s) in stage_seconds(workdir).items()]
    lines += ["", "Regenerate: `python benchmarks/demo_budget.py --run` (or `--summarise <clone>`).", "", END]
    return "\n".join(lines), (t2, total)


def update_summary_row(t2: float, total: float | None) -> None:
    text = README.read_text()
    shown = f"{t2:.1f} min / {'not measured' if total is None else f'{total:.1f} min'}"
    if t2 > BUDGETS_MIN[0] or (total is not None and total > BUDGETS_MIN[1]):
        met = "no"
    else:
        met = "yes" if total is not None else "table2 yes; everything not measured"
    row = (f"| 19 | demo wall time from a fresh clone, `--cores 2`: table2 / everything | <= 15 / 30 min | "
           f"{shown} (section below) | {met} |")
    pattern = re.compile(r"^\| 19 \| demo wall time.*$", re.M)
    if pattern.search(text):
        text = pattern.sub(row, text)
    else:  # after the summary table's last row
        rows = list(re.finditer(r"^\|.*\|$", text.split("\n## ", 1)[0], re.M))
        text = text[:rows[-1].end()] + "\n" + row + text[rows[-1].end():]
    README.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="store_true", help="clone HEAD and run both targets first")
    p.add_argument("--workdir", type=Path, help="the clone (default with --run: a new temporary folder)")
    p.add_argument("--summarise", type=Path, metavar="DIR", help="a clone already run")
    p.add_argument("--note", default="", help="what else the machine was doing")
    args = p.parse_args()
    workdir = args.summarise or args.workdir
    if args.run:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="aloe-demo-budget-")) / "aloe"
        run(workdir)
    if workdir is None:
        p.error("give --run or --summarise DIR")
    section, (t2, total) = summarise(workdir, args.note)
    write_section(section, BEGIN, END)
    update_summary_row(t2, total)
    print(section)


if __name__ == "__main__":
    main()
