"""Command line: ``python -m aloe.align train JOB.(json|yaml)`` and
``python -m aloe.align select OUT.json RUN_DIR [RUN_DIR ...]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from aloe.align.job import run_alignment
from aloe.align.sweep import select_best_run


def _read(path: str) -> dict:
    text = Path(path).read_text()
    return json.loads(text) if path.endswith(".json") else yaml.safe_load(text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m aloe.align", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) one alignment / baseline run")
    t.add_argument("job", help="job config: {teacher, b, stem, train: {...TrainConfig keys}}")
    s = sub.add_parser("select", help="pick the run with the lowest held-out loss")
    s.add_argument("out", help="JSON file to write")
    s.add_argument("runs", nargs="+", help="run folders (each with result.json)")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        run_alignment(_read(args.job))
    else:
        print(json.dumps(select_best_run(args.runs, args.out), indent=2))


if __name__ == "__main__":
    main()
