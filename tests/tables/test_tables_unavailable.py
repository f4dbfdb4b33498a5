"""Unavailable records (the data cannot give the number) in every layout, the CSV, the HTML and the
plots: "n/a" with the record's reason as a numbered footnote, never a number; no bold, no delta."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest
import torch
from tables_helpers import (
    DEMO_DATASETS, PAPER_BACKBONES, PAPER_DATASETS, HtmlCells, check_tex_syntax, tex_footnotes, tex_marks,
    tex_numbers, write_demo_records, write_recognition,
)

from aloe.eval.gridpg import make_grids
from aloe.records import NotEnoughData, make_unavailable_record, read_records, write_records
from aloe.tables import build_table, plot_data_efficiency, plot_gridpg_vs_accuracy
from aloe.tables.html import table_html
from aloe.tables.render import tex_escape


def _grid_error() -> NotEnoughData:
    """The error the GridPG code raises when the confident images cover one class (the demo DINOv3 case)."""
    labels = torch.arange(24) % 4
    with pytest.raises(NotEnoughData) as err:
        make_grids(torch.zeros(24, 3, 8, 8), labels, torch.tensor([2, 6, 10]), num_grids=4)
    return err.value


def _make_unavailable(records: list[dict], match, error: NotEnoughData) -> list[dict]:
    """Replace the records matching ``match`` by unavailable records of the same cell."""
    out, n = [], 0
    for r in records:
        if match(r):
            params = r["params"]
            r = make_unavailable_record(r["metric"], error, backbone=r["backbone"], variant=r["variant"],
                                        dataset=r["dataset"], params=params)
            n += 1
        out.append(r)
    assert n >= 1
    return out


def _cell_is(backbone: str, variant: str, dataset: str, metric: str = "lp_top1"):
    return lambda r: (r["backbone"], r["variant"], r["dataset"], r["metric"]) == (backbone, variant, dataset, metric)


def _build(tmp_path, name, records):
    write_records(tmp_path / f"{name}_records.json", records)
    csv, tex, html = (tmp_path / f"{name}.{ext}" for ext in ("csv", "tex", "html"))
    table = build_table(name, [tmp_path / f"{name}_records.json"], csv, tex)
    table_html(csv, html)
    df = pd.read_csv(csv, float_precision="round_trip", keep_default_na=False, dtype={"note": str, "footnote": str})
    return table, df, tex.read_text(), html.read_text()


def _check_html_matches(tex: str, html: str) -> None:
    parser = HtmlCells()
    parser.feed(html)
    got = {(i, j - 1): t for i, r in enumerate(parser.rows) for j, t in enumerate(r["texts"]) if j and t != "--"}
    assert got == tex_numbers(tex)
    marks = {(i, j - 1): int(m) for i, r in enumerate(parser.rows) for j, m in enumerate(r["marks"]) if j and m}
    assert marks == tex_marks(tex)
    assert {k: tex_escape(v) for k, v in parser.notes.items()} == tex_footnotes(tex)


def test_gridpg_table_unavailable_aloe(tmp_path):
    files = write_demo_records(tmp_path / "r")
    recs = [r for f in files["tableB6"] for r in read_records(f)]
    error = _grid_error()
    recs = _make_unavailable(recs, lambda r: r["backbone"] == "demo_dinov3" and r["params"].get("method") == "bcos",
                             error)
    # and one teacher method of another backbone: the delta then uses the best method that has a value
    recs = _make_unavailable(recs, lambda r: r["backbone"] == "demo_vit" and r["params"].get("method") == "lime",
                             error)
    t, df, tex, html = _build(tmp_path, "tableB6", recs)
    rows = {r.cells[0].backbone: r for r in t.blocks[0].rows}
    assert t.columns[4:] == ["GridPG IG", "GridPG LIME", "GridPG ALOE", "Delta GridPG"]
    dino = rows["demo_dinov3"]
    assert dino.cells[6].value is None and dino.cells[7].value is None  # ALOE GridPG and the delta
    assert not any(c.bold for c in dino.cells)
    assert dino.cells[6].note == dino.cells[7].note == error.reason
    grid = {(r["backbone"], r["params"].get("method")): r["value"] for r in recs if r["metric"] == "gridpg"}
    vit = rows["demo_vit"]
    assert vit.cells[5].value is None
    assert vit.cells[7].value == pytest.approx(100 * (grid[("demo_vit", "bcos")] - grid[("demo_vit", "ig")]))
    assert vit.cells[6].bold == (grid[("demo_vit", "bcos")] > grid[("demo_vit", "ig")])
    # LaTeX: n/a with footnote 1, the reason under the table (one footnote for the three cells)
    check_tex_syntax(tex)
    printed, marks = tex_numbers(tex), tex_marks(tex)
    na = {k for k, v in printed.items() if v == "n/a"}
    i_vit, i_dino = 0, 2
    assert na == {(i_vit, 5), (i_dino, 6), (i_dino, 7)}
    assert {k: marks[k] for k in na} == {k: 1 for k in na} and set(marks) == na
    assert tex_footnotes(tex) == {1: tex_escape(error.reason)}
    assert r"\textcolor{gray}{n/a$^{1}$}" in tex  # the teacher's n/a cell stays grey
    assert r"\textgreater{}= 4 classes" in tex and ">=" not in tex_footnotes(tex)[1]
    # CSV: a line per n/a cell, no number, status and reason as columns
    na_rows = df[df.status == "unavailable"]
    assert set(zip(na_rows.row_index, na_rows.col_index)) == na
    assert (na_rows.value == "").all() and (na_rows.note == error.reason).all() and (na_rows.footnote == "1").all()
    assert (df[df.status == "ok"].note == "").all()
    assert set(na_rows.metric) == {"gridpg/lime", "gridpg/bcos", "gridpg"}
    # HTML: same cells, marks and footnote
    _check_html_matches(tex, html)
    assert f"<sup>1</sup> {error.reason.replace('>', '&gt;')}</p>" in html


def test_grid_table_average_and_delta_of_unavailable(tmp_path):
    files = write_demo_records(tmp_path / "r")
    recs = read_records(files["table2"][0])
    error = _grid_error()
    recs = _make_unavailable(recs, _cell_is("demo_siglip", "aloe", "digits"), error)
    t, df, tex, html = _build(tmp_path, "table2", recs)
    block = t.blocks[1]
    assert block.title == "Demo SigLIP"
    by = {r.label: r for r in block.rows}
    digits, avg = DEMO_DATASETS.index("digits"), len(DEMO_DATASETS)
    aloe, bcos, delta = by["ALOE"], by["B-cosif."], by["Delta (ALOE - B-cosif.)"]
    assert aloe.cells[digits].value is None and aloe.cells[avg].value is None
    assert aloe.cells[avg].note == f"Avg. over 3 datasets, n/a for Digits: {error.reason}"
    assert delta.cells[digits].value is None and delta.cells[digits].note == error.reason
    assert delta.cells[avg].value is None and delta.cells[avg].note == aloe.cells[avg].note
    # bold ignores n/a: one number left in those columns, so nothing is bold there
    assert not bcos.cells[digits].bold and not bcos.cells[avg].bold
    # other columns are untouched and still bold their best
    lp = {(r["backbone"], r["variant"], r["dataset"]): r["value"] for r in recs if r["value"] is not None}
    shapes = DEMO_DATASETS.index("shapes")
    assert aloe.cells[shapes].value == lp[("demo_siglip", "aloe", "shapes")]
    assert aloe.cells[shapes].bold == (lp[("demo_siglip", "aloe", "shapes")] > lp[("demo_siglip", "bcosification",
                                                                                   "shapes")])
    notes = tex_footnotes(tex)
    assert notes == {1: tex_escape(error.reason), 2: tex_escape(aloe.cells[avg].note)}
    assert list(tex_numbers(tex).values()).count("n/a") == 4
    assert sorted(tex_marks(tex).values()) == [1, 1, 2, 2]
    check_tex_syntax(tex)
    assert not any("n/a" in v for v in df.value) and len(df[df.status == "unavailable"]) == 4
    _check_html_matches(tex, html)
    # Table 3a shows only the first dataset: its Avg. footnote names the hidden one
    knn = _make_unavailable(read_records(files["table3a"][0]), _cell_is("demo_vit", "bcosification", "textures",
                                                                        "knn_top1"), error)
    t3, _, tex3, _ = _build(tmp_path, "table3a", knn)
    assert "n/a for Textures" in tex_footnotes(tex3)[1] and t3.blocks[0].rows[1].cells[1].value is None


def test_ablation_table_bold_skips_unavailable(tmp_path):
    files = write_demo_records(tmp_path / "r")
    recs = read_records(files["table4"][0])
    means = {}
    for r in recs:
        if r["backbone"] == "demo_vit" and r["variant"].startswith("aloe:depths="):
            means.setdefault(r["variant"], []).append(r["value"])
    best = max(means, key=lambda v: sum(means[v]))
    recs = _make_unavailable(recs, _cell_is("demo_vit", best, "shapes"), _grid_error())
    t, df, tex, _ = _build(tmp_path, "table4", recs)
    row = t.blocks[0].rows[0]
    variants = [f"aloe:depths={s}" for s in ("pool", "L", "2L3-L", "L3-2L3-L", "all")]
    assert row.cells[variants.index(best)].value is None
    rest = {v: sum(x) / 3 for v, x in means.items() if v != best}
    assert [c.bold for c in row.cells] == [v != best and rest[v] == max(rest.values()) for v in variants]
    assert "n/a for Shapes" in tex_footnotes(tex)[1]
    check_tex_syntax(tex)


def test_fig1_skips_unavailable_points(tmp_path, caplog):
    files = write_demo_records(tmp_path / "r")
    recs = [r for f in files["tableB6"] for r in read_records(f)]
    error = _grid_error()
    recs = _make_unavailable(recs, lambda r: r["backbone"] == "demo_dinov3" and r["params"].get("method") == "bcos",
                             error)
    write_records(tmp_path / "all.json", recs)
    with caplog.at_level(logging.WARNING, logger="aloe.tables.plots"):
        points = plot_gridpg_vs_accuracy([tmp_path / "all.json"], tmp_path / "fig1.png")
    assert (tmp_path / "fig1.png").stat().st_size > 1000
    assert len(points) == 9
    skipped = [p for p in points if p["status"] == "unavailable"]
    assert [(p["backbone"], p["variant"], p["method"]) for p in skipped] == [("demo_dinov3", "aloe", "bcos")]
    assert skipped[0]["gridpg"] is None and skipped[0]["reason"] == error.reason
    assert all(math.isfinite(p["gridpg"]) for p in points if p["status"] == "ok")
    assert f"not plotted (n/a): Demo DINOv3 ALOE (B-cos): {error.reason}" in caplog.messages


def test_fig1_unavailable_accuracy_and_fig9(tmp_path, caplog):
    files = write_demo_records(tmp_path / "r")
    error = _grid_error()
    recs = [r for f in files["tableB6"] for r in read_records(f)]
    recs = _make_unavailable(recs, _cell_is("demo_vit", "teacher", "shapes"), error)  # the teacher's LP
    write_records(tmp_path / "b6.json", recs)
    points = plot_gridpg_vs_accuracy([tmp_path / "b6.json"], tmp_path / "fig1.png")
    skipped = [(p["backbone"], p["variant"], p["method"], p["reason"]) for p in points if p["status"] != "ok"]
    assert skipped == [("demo_vit", "teacher", m, f"LP top-1: {error.reason}") for m in ("ig", "lime")]
    # Fig. 9: an unavailable fraction is left out of its line, an unavailable reference is None
    recs = read_records(files["table4"][0]) + read_records(files["table2"][0])
    recs = _make_unavailable(recs, _cell_is("demo_siglip", "aloe:data=0.1", "shapes"), error)
    recs = _make_unavailable(recs, _cell_is("demo_siglip", "bcosification", "shapes"), error)
    write_records(tmp_path / "fig9.json", recs)
    with caplog.at_level(logging.WARNING, logger="aloe.tables.plots"):
        data = plot_data_efficiency([tmp_path / "fig9.json"], tmp_path / "fig9.png")
    siglip = data["demo_siglip"]
    assert siglip["fractions"] == [0.01, 0.5, 1.0] and siglip["values"] == pytest.approx([60.2, 70.0, 80.0])
    assert siglip["unavailable"] == {0.1: error.reason} and siglip["bcosification"] is None
    assert siglip["teacher"] is not None and data["demo_vit"]["fractions"] == [0.01, 0.1, 0.5, 1.0]
    assert f"not plotted (n/a): ALOE Demo SigLIP at 10 %: {error.reason}" in caplog.messages
    assert f"not plotted (n/a): B-cosif. Demo SigLIP: {error.reason}" in caplog.messages


def test_paper_typo_footnote(tmp_path):
    path = write_recognition(tmp_path / "lp.json", "lp_top1", PAPER_BACKBONES, PAPER_DATASETS, 0)
    _, df, tex, html = _build(tmp_path, "table2", read_records(path))
    noted = df[df.note != ""]
    assert len(noted) == 1
    row = noted.iloc[0]
    assert (row.source, row.backbone, row.variant, row.dataset, float(row.value)) == (
        "paper", "vit_b16_sup", "aloe", "cifar100", 97.61)
    assert row.status == "ok" and row.footnote == "1" and "likely typo" in row.note
    assert r"\textit{97.61$^{1}$}" in tex and tex_footnotes(tex) == {1: tex_escape(row.note)}
    assert tex_numbers(tex)[(int(row.row_index), int(row.col_index))] == "97.61"
    _check_html_matches(tex, html)
