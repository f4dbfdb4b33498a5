"""Does a run tell the paper's story? Its targets checked on the table CSVs (issue 19):

* ALOE's LP average is at least 95 % of the teacher's and above B-cosification's (Table 2);
* the same for k-NN (Table 3a);
* the SigLIP student's zero-shot top-1 is at least 90 % of the teacher's (Table 3b);
* ALOE's inherent GridPG beats the best post-hoc method on the teacher (Table B6).

    python -m aloe.tables.story results/tables [-o results/tables/story.md]

prints one Markdown row per (target, backbone) with the numbers and met / missed; only reads the
tables (``aloe.tables`` reads records, never writes them).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from aloe.io import write_text

LP_KNN_SHARE, ZERO_SHOT_SHARE = 0.95, 0.90


def _cells(csv: Path) -> pd.DataFrame:
    df = pd.read_csv(csv)
    return df[df.status == "ok"]


def _value(df: pd.DataFrame, backbone: str, variant: str, column: str):
    rows = df[(df.backbone == backbone) & (df.variant == variant) & (df.source != "paper") & (df.column == column)]
    return float(rows.value.iloc[0]) if len(rows) else None


def recognition_rows(df: pd.DataFrame, name: str, column: str, share: float, beat_bcos: bool = True) -> list[tuple]:
    out = []
    for b in dict.fromkeys(df.backbone):
        teacher, bcos, aloe = (_value(df, b, v, column) for v in ("teacher", "bcosification", "aloe"))
        if None in (teacher, aloe):
            continue
        beat_bcos = beat_bcos and bcos is not None
        met = aloe >= share * teacher and (not beat_bcos or aloe > bcos)
        numbers = (f"ALOE {aloe:.2f} = {100 * aloe / teacher:.1f} % of teacher {teacher:.2f}"
                   + ("" if bcos is None else f"; B-cosif. {bcos:.2f}"))
        out.append((name, b, numbers, f">= {100 * share:g} % of teacher" + (", > B-cosif." if beat_bcos else ""),
                    met))
    return out


def gridpg_rows(df: pd.DataFrame) -> list[tuple]:
    out = []
    for b in dict.fromkeys(df.backbone):
        cells = df[(df.backbone == b) & (df.source == "measured") & df.metric.str.startswith("gridpg/")]
        ours = cells[cells.variant == "aloe"]
        posthoc = cells[cells.variant == "teacher"]
        if ours.empty or posthoc.empty:
            continue
        best = posthoc.loc[posthoc.value.idxmax()]
        value = float(ours.value.iloc[0])
        method = best.metric.split("/", 1)[1]
        out.append(("GridPG", b, f"ALOE {value:.2f}; best post-hoc {method} {best.value:.2f}",
                    "> best post-hoc", value > best.value))
    return out


def story(tables: Path) -> str:
    rows = []
    checks = (("table2", lambda df: recognition_rows(df, "LP avg.", "Avg.", LP_KNN_SHARE)),
              ("table3a", lambda df: recognition_rows(df, "k-NN avg.", "Avg.", LP_KNN_SHARE)),
              ("table3b", lambda df: recognition_rows(df, "zero-shot", df.column.iloc[0], ZERO_SHOT_SHARE,
                                                      beat_bcos=False)),
              ("tableB6", gridpg_rows))
    versions = set()
    for name, check in checks:
        csv = tables / f"{name}.csv"
        if not csv.is_file():
            raise FileNotFoundError(f"{csv} does not exist: build it first (snakemake --cores 2 {csv})")
        rows += check(_cells(csv))
        md = csv.with_suffix(".md")
        if md.is_file():
            versions |= set(re.findall(r"^Records of code version (.+)\.$", md.read_text(), re.M))
    lines = ["| target | backbone | measured | needs | met |", "|---|---|---|---|---|"]
    lines += [f"| {t} | {b} | {numbers} | {needs} | {'yes' if met else '**no**'} |"
              for t, b, numbers, needs, met in rows]
    lines += ["", f"{sum(r[-1] for r in rows)} of {len(rows)} targets met.", "",
              f"Records of code version {', '.join(sorted(versions)) or 'unknown'}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", type=Path, nargs="?", default=Path("results/tables"))
    p.add_argument("-o", "--out", type=Path)
    args = p.parse_args(argv)
    text = story(args.tables)
    if args.out:
        write_text(args.out, text)
    print(text, end="")


if __name__ == "__main__":
    main()
