"""Synthetic result records and LaTeX checks shared by the table tests."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from aloe.records import make_record, write_records

PAPER_BACKBONES = ("vit_b16_sup", "siglip2_b16", "dinov3_b16")
PAPER_DATASETS = ("imagenet1k", "caltech101", "flowers102", "food101", "fgvc_aircraft", "dtd", "stanford_cars",
                  "sun397", "cifar10", "cifar100")
DEMO_BACKBONES = ("demo_vit", "demo_siglip", "demo_dinov3")
DEMO_DATASETS = ("shapes", "textures", "digits")
VARIANTS = ("teacher", "bcosification", "aloe")
DEPTH_METRICS = ("depth_rel_delta1", "depth_rel_rmse", "depth_abs_delta1", "depth_abs_rmse")
NORMAL_METRICS = ("normals_frac_under_11.25", "normals_frac_under_22.5", "normals_frac_under_30", "normals_rmse_deg")


def accuracy(rng: random.Random, variant: str) -> float:
    # Teachers score highest, so a bold teacher would show the "best interpretable" rule is broken;
    # B-cosification and ALOE overlap, so each wins some columns.
    return rng.uniform(95.0, 99.0) if variant == "teacher" else rng.uniform(30.0, 90.0)


def write_recognition(path: Path, metric: str, backbones, datasets, seed: int, variants=VARIANTS) -> Path:
    rng = random.Random(seed)
    recs = [make_record(metric, accuracy(rng, v), backbone=b, variant=v, dataset=d, params={"seed": 0})
            for b in backbones for v in variants for d in datasets]
    write_records(path, recs)
    return path


def write_demo_records(root: Path) -> dict[str, list[Path]]:
    """Every evaluation the demo preset produces, as record files; returns the files per table."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    lp = write_recognition(root / "lp.json", "lp_top1", DEMO_BACKBONES, DEMO_DATASETS, 1)
    knn = write_recognition(root / "knn.json", "knn_top1", DEMO_BACKBONES, DEMO_DATASETS, 2)
    zs = write_recognition(root / "zs.json", "zeroshot_top1", ("demo_siglip",), ("shapes",), 3)
    dense = []
    for b in DEMO_BACKBONES:
        for v in VARIANTS:
            ranges = [(0.5, 0.99), (0.1, 0.6)] * 2 + [(0.2, 0.9)] * 3 + [(15, 40)]  # normals: fractions
            for m, (lo, hi) in zip(DEPTH_METRICS + NORMAL_METRICS, ranges):
                dense.append(make_record(m, rng.uniform(lo, hi), backbone=b, variant=v, dataset="depth"))
    write_records(root / "dense.json", dense)
    grid = []
    for b in DEMO_BACKBONES:
        for method in ("ig", "lime"):
            grid.append(make_record("gridpg", rng.uniform(0.3, 0.6), backbone=b, variant="teacher", dataset="shapes",
                                    params={"method": method}))
        grid.append(make_record("gridpg", rng.uniform(0.6, 0.9), backbone=b, variant="aloe", dataset="shapes",
                                params={"method": "bcos"}))
    write_records(root / "gridpg.json", grid)
    abl = []
    for b in DEMO_BACKBONES:
        for d in DEMO_DATASETS:
            for s in ("all", "pool", "L3-2L3-L", "L", "2L3-L"):  # not in column order on purpose
                abl.append(make_record("lp_top1", rng.uniform(40, 90), backbone=b, variant=f"aloe:depths={s}",
                                       dataset=d))
            for s in ("mse", "cosine", "siglip", "infonce"):  # the params spelling of the convention
                abl.append(make_record("lp_top1", rng.uniform(40, 90), backbone=b, variant="aloe", dataset=d,
                                       params={"ablation": f"loss={s}"}))
        for f in (0.01, 0.1, 0.5, 1.0):
            abl.append(make_record("lp_top1", 60 + 20 * f, backbone=b, variant=f"aloe:data={f:g}", dataset="shapes"))
    write_records(root / "ablations.json", abl)
    dense_files, rec = [root / "dense.json"], [lp, knn]
    return {
        "table2": rec[:1], "tableB1": rec[:1], "table3a": [knn], "tableB2": [knn], "table3b": [zs], "tableB3": [zs],
        "tableB4": dense_files, "tableB5": dense_files, "tableB6": [lp, knn, root / "gridpg.json"],
        "table4": [root / "ablations.json"], "tableB8": [root / "ablations.json"],
    }


# ---- LaTeX checks ---------------------------------------------------------------------------

def tabular_body(tex: str) -> tuple[int, list[str]]:
    """(number of columns from the column spec, body lines between \\toprule and \\bottomrule)."""
    spec = re.search(r"\\begin\{tabular\}\{([^}]*)\}", tex)
    assert spec, "no tabular environment"
    ncols = len(re.findall(r"[lrc]", spec.group(1)))
    lines = [ln for ln in tex.splitlines() if ln and not ln.startswith("%")]
    body = lines[lines.index(r"\toprule") + 1 : lines.index(r"\bottomrule")]
    return ncols, body


def split_cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)&", line.removesuffix(r"\\").strip())]


def check_tex_syntax(tex: str) -> None:
    """Balanced braces, one \\begin/\\end pair, every row ends in \\\\ with ncols cells."""
    unescaped = re.sub(r"\\[{}]", "", tex)
    depth = 0
    for ch in unescaped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "closing brace without opening brace"
    assert depth == 0, "unbalanced braces"
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    ncols, body = tabular_body(tex)
    for line in body:
        if line in (r"\midrule", r"\toprule", r"\bottomrule"):
            continue
        assert line.endswith(r"\\"), f"row does not end in \\\\: {line}"
        multi = re.match(r"\\multicolumn\{(\d+)\}", line)
        if multi:
            assert int(multi.group(1)) == ncols, line
        else:
            assert len(split_cells(line)) == ncols, f"{len(split_cells(line))} cells for {ncols} columns: {line}"


def compile_fragments(tmp: Path, tex_files: list[Path]) -> str:
    """Compile the fragments in a minimal document with pdflatex when installed, else check the
    syntax with ``check_tex_syntax``. Returns which check ran."""
    for f in tex_files:
        check_tex_syntax(f.read_text())
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return "syntax"
    doc = tmp / "doc.tex"
    inputs = "\n\n".join(rf"\resizebox{{\textwidth}}{{!}}{{\input{{{f.resolve()}}}}}" for f in tex_files)
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{xcolor}\n\\usepackage{graphicx}\n"
                   f"\\begin{{document}}\n{inputs}\n\\end{{document}}\n")
    run = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp / "doc.pdf").stat().st_size > 1000
    return "pdflatex"


NUMBER = re.compile(r"[+-]?\d+\.\d+")


def tex_numbers(tex: str) -> dict[tuple[int, int], str]:
    """(row_index, col_index) -> the printed number (or "n/a") of every body cell but "--"."""
    _, body = tabular_body(tex)
    out, row = {}, 0
    for line in body[1:]:  # body[0] is the header
        if line.startswith("\\midrule") or line.startswith("\\multicolumn"):
            continue
        for j, cell in enumerate(split_cells(line)[1:]):
            m = NUMBER.search(cell)
            if m:
                out[(row, j)] = m.group(0)
            elif "n/a" in cell:
                out[(row, j)] = "n/a"
            else:
                assert cell == "--", f"cell {cell!r} is neither a number, n/a nor --"
        row += 1
    return out


def tex_marks(tex: str) -> dict[tuple[int, int], int]:
    """(row_index, col_index) -> the footnote number ($^{k}$) of every marked body cell."""
    _, body = tabular_body(tex)
    out, row = {}, 0
    for line in body[1:]:
        if line.startswith("\\midrule") or line.startswith("\\multicolumn"):
            continue
        for j, cell in enumerate(split_cells(line)[1:]):
            m = re.search(r"\$\^\{(\d+)\}\$", cell)
            if m:
                out[(row, j)] = int(m.group(1))
        row += 1
    return out


def tex_footnotes(tex: str) -> dict[int, str]:
    """Footnote number -> text (as LaTeX) of the footnote lines under \\bottomrule."""
    ncols, _ = tabular_body(tex)
    lines = tex.splitlines()
    notes = lines[lines.index(r"\bottomrule") + 1 : lines.index(r"\end{tabular}")]
    out = {}
    for line in notes:
        m = re.fullmatch(r"\\multicolumn\{(\d+)\}\{l\}\{\\footnotesize \$\^\{(\d+)\}\$ (.*)\} \\\\", line)
        assert m and int(m.group(1)) == ncols, f"not a footnote line: {line}"
        out[int(m.group(2))] = m.group(3)
    assert list(out) == list(range(1, len(out) + 1)), "footnotes are not numbered 1..n in order"
    return out


# ---- HTML checks ----------------------------------------------------------------------------

class HtmlCells(HTMLParser):
    """Body rows of the table: (row label, [cell texts], [cell classes], [bold?], [footnote marks]),
    and the footnotes under it (number -> text)."""

    def __init__(self):
        super().__init__()
        self.rows, self.block_rows, self._row, self._cell, self._in_body = [], 0, None, None, False
        self._sup, self.notes, self._note = False, {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = None if attrs.get("class") == "block" else {"texts": [], "classes": [], "bold": [],
                                                                    "marks": []}
            self.block_rows += attrs.get("class") == "block"
        elif tag == "td" and self._row is not None:
            self._cell = {"text": "", "class": attrs.get("class", ""), "bold": False, "mark": ""}
        elif tag == "b" and self._cell is not None:
            self._cell["bold"] = True
        elif tag == "sup":
            self._sup = True
        elif tag == "p" and attrs.get("class") == "note":
            self._note = ["", ""]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["mark" if self._sup else "text"] += data
        elif self._note is not None:
            self._note[0 if self._sup else 1] += data

    def handle_endtag(self, tag):
        if tag == "sup":
            self._sup = False
        elif tag == "p" and self._note is not None:
            self.notes[int(self._note[0])] = self._note[1].strip()
            self._note = None
        elif tag == "td" and self._cell is not None:
            for k, key in (("text", "texts"), ("class", "classes"), ("bold", "bold"), ("mark", "marks")):
                self._row[key].append(self._cell[k])
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
