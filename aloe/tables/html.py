"""A table's long-format CSV as a standalone HTML page, for the Snakemake report.

Snakemake's report shows HTML, images and PDF inline but offers CSV and LaTeX files only as
downloads, so each table is also rendered here from its CSV, with the LaTeX layout: rows and
columns at their ``row_index`` / ``col_index``, the same number formatting (``Cell.text``),
teachers grey with a dagger, bold best interpretable value, italic paper rows, and "n/a" cells and
cell notes with the same numbered footnotes, listed under the table.
"""

from __future__ import annotations

import os
from html import escape

import pandas as pd

from aloe.io import write_text
from aloe.tables.model import Cell
from aloe.tables.names import TEACHER

STYLE = """body{font-family:sans-serif;font-size:14px}
table{border-collapse:collapse;border-top:2px solid #000;border-bottom:2px solid #000}
th,td{padding:3px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
thead th{border-bottom:1px solid #000}tr.block td{font-style:italic;border-top:1px solid #000;text-align:left}
.teacher{color:#888}.paper{font-style:italic;color:#555}.na{color:#a00}p.note{font-size:12px;margin:2px 0}"""


def _cell(row) -> Cell:
    value = float(row.value) if row.status == "ok" else None
    return Cell(value=value, backbone=row.backbone, variant=row.variant, dataset=row.dataset, metric=row.metric,
                source=row.source, bold=bool(row.bold), note=str(row.note))


def _td(cell: Cell | None, mark: str) -> str:
    if cell is None:
        return "<td>--</td>"
    text = escape(cell.text()) + (f"<sup>{escape(mark)}</sup>" if mark else "")
    if cell.bold:
        text = f"<b>{text}</b>"
    classes = [] if cell.available else ["na"]
    if cell.source == "paper":
        classes.append("paper")
    elif cell.variant == TEACHER:
        classes.append("teacher")
    return f'<td class="{" ".join(classes)}">{text}</td>' if classes else f"<td>{text}</td>"


def table_html(in_csv: str | os.PathLike, out_html: str | os.PathLike, *, title: str | None = None) -> str:
    """Render ``in_csv`` (written by ``build_table``) to ``out_html``; returns the HTML."""
    df = pd.read_csv(in_csv, float_precision="round_trip", keep_default_na=False, dtype={"block": str})
    missing = {"block", "row", "row_index", "column", "col_index", "source", "variant", "value", "bold", "status",
               "footnote", "note"} - set(df)
    if missing:
        raise ValueError(f"{in_csv} is not a table CSV of aloe.tables: lacks columns {sorted(missing)}")
    if df.empty:
        raise ValueError(f"{in_csv} holds no numbers")
    columns = df.drop_duplicates("col_index").set_index("col_index")["column"].to_dict()
    n = int(df.col_index.max()) + 1
    name = title or str(df.table.iloc[0])
    lines = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(name)}</title>",
             f"<style>{STYLE}</style></head><body><table>", "<thead><tr><th>Model</th>"
             + "".join(f"<th>{escape(str(columns.get(j, '')))}</th>" for j in range(n)) + "</tr></thead><tbody>"]
    block = None
    for r, group in df.groupby("row_index", sort=True):
        first = group.iloc[0]
        if first.block != block:
            block = first.block
            if block:
                lines.append(f'<tr class="block"><td colspan="{n + 1}">{escape(block)}</td></tr>')
        cells: list[tuple[Cell | None, str]] = [(None, "")] * n
        for row in group.itertuples():
            cells[int(row.col_index)] = (_cell(row), str(row.footnote))
        label = escape(str(first.row))
        if (group.source == "paper").all():
            label = f'<span class="paper">{label}</span>'
        elif (group.variant == TEACHER).all():
            label = f'<span class="teacher">{label}&dagger;</span>'
        lines.append(f"<tr><td>{label}</td>" + "".join(_td(c, mark) for c, mark in cells) + "</tr>")
    notes = df[df.footnote != ""].drop_duplicates("footnote").sort_values("footnote", key=lambda f: f.astype(int))
    lines.append("</tbody></table>")
    lines += [f'<p class="note"><sup>{escape(str(r.footnote))}</sup> {escape(str(r.note))}</p>'
              for r in notes.itertuples()]
    lines += ["<p>Teachers in grey with &dagger;; bold: best interpretable (non-teacher) value."
              + (" Italic rows: numbers printed in the paper." if (df.source == "paper").any() else "")
              + (" n/a: the data cannot give the number (footnote)." if (df.status != "ok").any() else "") + "</p>",
              "</body></html>", ""]
    text = "\n".join(lines)
    write_text(out_html, text)
    return text
