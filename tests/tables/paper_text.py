"""The paper's tables as printed in its text version, for checking ``paper_numbers.json``.

The text (``aloe-paper-with-appendix.txt``) prints each table as tab-separated lines right after
its caption (or right before it, for Tables 3 and B6). ``PAPER_TABLES`` says, per table of
``paper_numbers.json``, where its lines are, which header labels its value columns carry (checked,
so a wrong block cannot pass) and how a transcribed entry finds its row and column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PAPER_FILE = "aloe-paper-with-appendix.txt"
REPO = Path(__file__).resolve().parents[2]

Entry = dict[str, Any]
Rows = list[list[str]]


def paper_path() -> Path:
    """The paper text: $ALOE_PAPER, else shared/paper/ next to the repository (CI: ../shared/paper
    from the repo root; a worktree under wt/: ../../shared/paper). Missing: a clear error."""
    candidates = [Path(os.environ["ALOE_PAPER"])] if os.environ.get("ALOE_PAPER") else []
    candidates += [REPO.parent / "shared" / "paper" / PAPER_FILE, REPO.parent.parent / "shared" / "paper" / PAPER_FILE]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"the paper text {PAPER_FILE} is needed to check paper_numbers.json; looked at "
                            + ", ".join(str(c) for c in candidates) + " (set ALOE_PAPER to its path)")


def table_lines(text: str, caption: str, where: str) -> Rows:
    """The tab-separated lines next to the one line starting with ``caption``, cells stripped."""
    lines = text.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith(caption)]
    if len(at) != 1:
        raise ValueError(f"{len(at)} lines of the paper start with {caption!r}; expected one")
    step = 1 if where == "after" else -1
    i = at[0] + step
    while 0 <= i < len(lines) and not lines[i].strip():
        i += step
    block = []
    while 0 <= i < len(lines) and "\t" in lines[i]:
        block.append([c.strip() for c in lines[i].split("\t")])
        i += step
    if not block:
        raise ValueError(f"no tab-separated table lines {where} the caption {caption!r}")
    return block if step == 1 else block[::-1]


def number(cell: str) -> float | None:
    try:
        return float(cell.replace("\u2212", "-"))
    except ValueError:
        return None


# Row labels of the paper per backbone key.
TEACHER_PREFIX = {"vit_b16_sup": "Sup.", "siglip2_b16": "SigLIP2", "dinov3_b16": "DINOv3"}
VARIANT_PREFIX = {"bcosification": "B-cosif.", "aloe": "ALOE"}


def _is_arch(cell: str, arch: str) -> bool:
    return cell == arch or cell.endswith(f"\u2014 {arch}")


def teacher_block_row(rows: Rows, entry: Entry, *, arch: bool = False, cells: slice = slice(None)) -> list[str]:
    """Teacher row "<teacher> ..." (of ViT-B/16 when the table lists several architectures), then
    the first "B-cosif." / "ALOE" row after it, before the next teacher or section row."""
    rows = [r[cells] for r in rows]
    prefix = TEACHER_PREFIX[entry["backbone"]]

    def arch_ok(row, name):
        return not arch or any(_is_arch(c, name) for c in row[:2])

    start = [i for i, r in enumerate(rows) if r[0].startswith(prefix) and arch_ok(r, "ViT-B/16")]
    if len(start) != 1:
        raise LookupError(f"{len(start)} teacher rows start with {prefix!r}")
    if entry["variant"] == "teacher":
        return rows[start[0]]
    for r in rows[start[0] + 1 :]:
        if r[0].startswith("<i>") or any(r[0].startswith(p) for p in TEACHER_PREFIX.values()):
            break
        if r[0].startswith(VARIANT_PREFIX[entry["variant"]]) and arch_ok(r, "B-ViT-B/16"):
            return r
    raise LookupError(f"no {VARIANT_PREFIX[entry['variant']]!r} row after the {prefix!r} teacher row")


def labelled_row(labels: dict[str, str]) -> Callable[[Rows, Entry], list[str]]:
    def find(rows: Rows, entry: Entry) -> list[str]:
        found = [r for r in rows if r[0] == labels[entry["backbone"]]]
        if len(found) != 1:
            raise LookupError(f"{len(found)} rows labelled {labels[entry['backbone']]!r}")
        return found[0]

    return find


def only_number_row(rows: Rows, entry: Entry) -> list[str]:
    found = [r for r in rows if all(number(c) is not None for c in r)]
    if len(found) != 1:
        raise LookupError(f"{len(found)} rows of numbers only")
    return found[0]


def section_row(sections: dict[str, str], label: str) -> Callable[[Rows, Entry], list[str]]:
    """The first row labelled ``label`` after the section row naming the entry's teacher."""

    def find(rows: Rows, entry: Entry) -> list[str]:
        heads = [i for i, r in enumerate(rows) if r[0].startswith("<i>") and sections[entry["backbone"]] in r[0]]
        if len(heads) != 1:
            raise LookupError(f"{len(heads)} section rows name {sections[entry['backbone']]!r}")
        for r in rows[heads[0] + 1 :]:
            if r[0].startswith("<i>"):
                break
            if r[0] == label:
                return r
        raise LookupError(f"no {label!r} row in section {sections[entry['backbone']]!r}")

    return find


@dataclass(frozen=True)
class PaperTable:
    caption: str  # start of the caption line, e.g. "Table 2. "
    where: str  # the table's lines are "after" or "before" the caption
    header: tuple[str, ...]  # labels printed over the value columns (a contiguous run of one header line)
    columns: tuple[Any, ...]  # key of each value column, the row's last len(columns) cells
    column_key: Callable[[Entry], Any]
    find_row: Callable[[Rows, Entry], list[str]]
    # the part of each line that is this table (Table 3 prints a and b side by side)
    cells: slice = field(default_factory=lambda: slice(None))


_DATASETS = ("imagenet1k", "caltech101", "flowers102", "food101", "fgvc_aircraft", "dtd", "stanford_cars", "sun397",
             "cifar10", "cifar100", "avg")
_DATASET_HEADER = ("IN1k", "Cal101", "Flowers", "Food", "Aircr", "DTD", "Cars", "SUN", "C10", "C100", "Avg.")
_GRID = dict(header=_DATASET_HEADER, columns=_DATASETS, column_key=lambda e: e["dataset"])
_B6_COLUMNS = (("teacher", "lp_top1"), ("aloe", "lp_top1"), ("teacher", "knn_top1"), ("aloe", "knn_top1"),
               ("teacher", "gridpg/cp_lrp"), ("teacher", "gridpg/ig"), ("teacher", "gridpg/legrad"),
               ("teacher", "gridpg/chefercam"), ("aloe", "gridpg/bcos"), None)

PAPER_TABLES = {
    "table2": PaperTable("Table 2. ", "after", find_row=teacher_block_row, **_GRID),
    "tableB1": PaperTable("Table B1. ", "after", find_row=lambda r, e: teacher_block_row(r, e, arch=True), **_GRID),
    "tableB2": PaperTable("Table B2. ", "after", find_row=lambda r, e: teacher_block_row(r, e, arch=True), **_GRID),
    "table3a": PaperTable("Table 3. ", "before", ("IN1k (%)", "Avg (%)"), ("imagenet1k", "avg"),
                          lambda e: e["dataset"], lambda r, e: teacher_block_row(r, e, cells=slice(0, 3)),
                          cells=slice(0, 3)),
    "table3b": PaperTable("Table 3. ", "before", ("@1 (%)",), ("imagenet1k",), lambda e: e["dataset"],
                          lambda r, e: teacher_block_row(r, e, cells=slice(3, 5)), cells=slice(3, 5)),
    "tableB3": PaperTable("Table B3. ", "after", ("Zero-shot Acc.",), ("imagenet1k",), lambda e: e["dataset"],
                          lambda r, e: teacher_block_row(r, e, arch=True)),
    "table4": PaperTable("Table 4. ", "after", ("Pool", "+L", "+{2/3, L}", "+{1/3, 2/3, L}", "+All"),
                         ("aloe:depths=pool", "aloe:depths=L", "aloe:depths=2L3-L", "aloe:depths=L3-2L3-L",
                          "aloe:depths=all"), lambda e: e["variant"], only_number_row),
    "tableB4": PaperTable("Table B4. ", "after", (r"$\delta_1 \uparrow$", r"RMSE \downarrow") * 2,
                          ("depth_rel_delta1", "depth_rel_rmse", "depth_abs_delta1", "depth_abs_rmse"),
                          lambda e: e["metric"], teacher_block_row),
    "tableB6": PaperTable("Table B6. ", "before",
                          ("Teacher (X)", r"ALOE (\checkmark)") * 2 + ("LRP", "IG", "LeG", "Chf", r"ALOE (\checkmark)"),
                          _B6_COLUMNS, lambda e: (e["variant"], e["metric"]),
                          section_row({"siglip2_b16": "SigLIP2", "dinov3_b16": "DINOv3",
                                       "vit_b16_sup": "Supervised teacher"}, "ViT-B/16")),
    "tableB8": PaperTable("Table B8. ", "after", ("MSE", "Cosine", "SigLIP", "InfoNCE"),
                          ("aloe:loss=mse", "aloe:loss=cosine", "aloe:loss=siglip", "aloe:loss=infonce"),
                          lambda e: e["variant"],
                          labelled_row({"dinov3_b16": "DINOv3", "siglip2_b16": "SigLIP2",
                                        "vit_b16_sup": "Google ViT"})),
}


def has_header(rows: Rows, header: tuple[str, ...]) -> bool:
    n = len(header)
    return any(tuple(r[i : i + n]) == header for r in rows[:3] for i in range(len(r) - n + 1))


def printed_cell(text: str, name: str, entry: Entry) -> str:
    """The cell of the paper's table ``name`` where ``entry`` belongs (LookupError when none)."""
    spec = PAPER_TABLES[name]
    rows = table_lines(text, spec.caption, spec.where)
    if not has_header([r[spec.cells] for r in rows], spec.header):
        raise LookupError(f"the lines next to {spec.caption!r} lack the header {spec.header}")
    key = spec.column_key(entry)
    if key not in spec.columns:
        raise LookupError(f"column {key!r} is not one of the table's columns {spec.columns}")
    row = list(spec.find_row(rows, entry))
    while row and not row[-1]:
        row.pop()
    if len(row) < len(spec.columns):
        raise LookupError(f"row {row} has fewer than {len(spec.columns)} value cells")
    return row[-len(spec.columns) :][spec.columns.index(key)]
