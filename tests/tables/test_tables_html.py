"""HTML rendering of the table CSVs for the Snakemake report: same numbers, same places as the LaTeX."""

from __future__ import annotations

import pandas as pd
import pytest
from tables_helpers import HtmlCells, tex_numbers, write_demo_records

from aloe.tables import build_table
from aloe.tables.html import table_html


@pytest.mark.parametrize("name", ["table2", "tableB6", "table4", "tableB4"])
def test_html_matches_tex(tmp_path, name):
    files = write_demo_records(tmp_path / "records")
    csv, tex, html = tmp_path / f"{name}.csv", tmp_path / f"{name}.tex", tmp_path / f"{name}.html"
    build_table(name, files[name], csv, tex)
    table_html(csv, html)
    parser = HtmlCells()
    parser.feed(html.read_text())
    printed = tex_numbers(tex.read_text())
    got = {(i, j - 1): t for i, r in enumerate(parser.rows) for j, t in enumerate(r["texts"]) if j and t != "--"}
    assert got == printed  # every number, same text, same row and column
    tex_text = tex.read_text()
    assert parser.block_rows == tex_text.count(r"\multicolumn")
    # bold cells sit where the CSV marks them, and as many as the LaTeX prints
    df = pd.read_csv(csv)
    bold = {(i, j - 1) for i, r in enumerate(parser.rows) for j, b in enumerate(r["bold"]) if j and b}
    assert bold == {(r.row_index, r.col_index) for r in df.itertuples() if r.bold}
    assert len(bold) == tex_text.count(r"\textbf{")
    n_grey = sum("teacher" in c.split() for r in parser.rows for c in r["classes"][1:])
    assert n_grey == tex_text.count(r"\textcolor{gray}{") - tex_text.count(r"$^\dagger$}")


def test_html_rejects_other_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks columns"):
        table_html(path, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()
