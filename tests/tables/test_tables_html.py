"""HTML rendering of the table CSVs for the Snakemake report: same numbers, same places as the LaTeX."""

from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd
import pytest
from tables_helpers import tex_numbers, write_demo_records

from aloe.tables import build_table
from aloe.tables.html import table_html


class _Cells(HTMLParser):
    """Body rows of the table: (row label, [cell texts], [cell classes], [bold?])."""

    def __init__(self):
        super().__init__()
        self.rows, self.block_rows, self._row, self._cell, self._in_body = [], 0, None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = None if attrs.get("class") == "block" else {"texts": [], "classes": [], "bold": []}
            self.block_rows += attrs.get("class") == "block"
        elif tag == "td" and self._row is not None:
            self._cell = {"text": "", "class": attrs.get("class", ""), "bold": False}
        elif tag == "b" and self._cell is not None:
            self._cell["bold"] = True

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            for k, key in (("text", "texts"), ("class", "classes"), ("bold", "bold")):
                self._row[key].append(self._cell[k])
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None


@pytest.mark.parametrize("name", ["table2", "tableB6", "table4", "tableB4"])
def test_html_matches_tex(tmp_path, name):
    files = write_demo_records(tmp_path / "records")
    csv, tex, html = tmp_path / f"{name}.csv", tmp_path / f"{name}.tex", tmp_path / f"{name}.html"
    build_table(name, files[name], csv, tex)
    table_html(csv, html)
    parser = _Cells()
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
    n_grey = sum(c == "teacher" for r in parser.rows for c in r["classes"][1:])
    assert n_grey == tex_text.count(r"\textcolor{gray}{") - tex_text.count(r"$^\dagger$}")


def test_html_rejects_other_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks columns"):
        table_html(path, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()
