"""Paper tables from synthetic result records: cells, LaTeX, bold, deltas, paper rows, errors."""

from __future__ import annotations

import math
import random
import shutil
from statistics import fmean

import pandas as pd
import pytest
from tables_helpers import (
    DEMO_DATASETS, PAPER_BACKBONES, PAPER_DATASETS, compile_fragments, tex_numbers,
    write_demo_records, write_recognition,
)

from aloe.records import make_record, read_records, write_records
from aloe.tables import TABLES, MissingRecordError, build_table
from aloe.tables.render import tex_escape


@pytest.fixture
def paper_scale(tmp_path):
    path = write_recognition(tmp_path / "records" / "lp.json", "lp_top1", PAPER_BACKBONES, PAPER_DATASETS, 0)
    csv, tex = tmp_path / "out" / "table2.csv", tmp_path / "out" / "table2.tex"
    build_table("table2", [path], csv, tex)
    return path, pd.read_csv(csv, float_precision="round_trip"), tex.read_text()


def _measured(df):
    return df[df.source.isin(["measured", "average"])]


def test_table2_every_cell_finite(paper_scale):
    path, df, _ = paper_scale
    m = _measured(df)
    # 3 backbones x 3 variants x (10 datasets + Avg.), each a finite number
    assert len(m) == 3 * 3 * 11
    assert m.value.map(math.isfinite).all()
    cells = set(zip(m.backbone, m.variant, m.dataset))
    for b in PAPER_BACKBONES:
        for v in ("teacher", "bcosification", "aloe"):
            assert {(b, v, d) for d in (*PAPER_DATASETS, "avg")} <= cells
    # measured values are the record values, untouched
    records = {(r["backbone"], r["variant"], r["dataset"]): r["value"] for r in read_records(path)}
    for row in m[m.dataset != "avg"].itertuples():
        assert row.value == records[(row.backbone, row.variant, row.dataset)]
    for (b, v), group in m[m.dataset != "avg"].groupby(["backbone", "variant"]):
        avg = m[(m.backbone == b) & (m.variant == v) & (m.dataset == "avg")].value.item()
        assert avg == pytest.approx(fmean(group.value))


def test_table2_tex_round_trips_csv(paper_scale):
    _, df, tex = paper_scale
    printed = tex_numbers(tex)
    assert len(printed) == len(df)  # every printed number is in the CSV and vice versa
    for row in df.itertuples():
        text = printed[(row.row_index, row.col_index)]
        decimals = len(text.split(".")[1])
        assert decimals == 2
        assert float(text) == pytest.approx(row.value, abs=0.5 * 10**-decimals + 1e-9)
        assert text.startswith(("+", "-")) == (row.source == "delta")


def test_bold_marks_best_interpretable(paper_scale):
    _, df, tex = paper_scale
    m = _measured(df)
    assert not m[m.variant == "teacher"].bold.any()  # teachers are the highest numbers but never bold
    for (b, col), group in m[m.variant != "teacher"].groupby(["backbone", "column"]):
        best = group.loc[group.value.idxmax()]
        assert best.bold == 1 and group.bold.sum() == 1
    lines = tex.splitlines()
    for row in df[df.bold == 1].itertuples():
        assert f"\\textbf{{{row.value:.2f}}}" in tex
    assert sum(line.count("\\textbf{") for line in lines) == int(df.bold.sum())


def test_delta_row_is_aloe_minus_bcosification(paper_scale):
    _, df, _ = paper_scale
    delta = df[df.source == "delta"]
    assert len(delta) == 3 * 11
    m = _measured(df).set_index(["backbone", "variant", "dataset"]).value
    for row in delta.itertuples():
        assert row.value == pytest.approx(m[(row.backbone, "aloe", row.dataset)] - m[(row.backbone, "bcosification",
                                                                                       row.dataset)])


def test_paper_rows_for_matching_backbones(paper_scale, tmp_path):
    path, df, tex = paper_scale
    paper = df[df.source == "paper"]
    assert len(paper) == 3 * 3 * 11
    sup = paper.set_index(["backbone", "variant", "dataset"]).value
    assert sup[("vit_b16_sup", "teacher", "avg")] == 79.13
    assert sup[("siglip2_b16", "aloe", "avg")] == 88.48
    assert sup[("dinov3_b16", "bcosification", "avg")] == 73.68
    assert "\\textit{paper: ALOE}" in tex and "\\textit{80.23}" in tex
    assert not paper.bold.any()
    build_table("table2", [path], tmp_path / "np.csv", tmp_path / "np.tex", paper_numbers=False)
    assert "paper" not in (tmp_path / "np.tex").read_text()
    # an average over other datasets than the paper's ten is not compared with the paper's Avg.
    build_table("table2", [path], tmp_path / "p5.csv", tmp_path / "p5.tex", datasets=PAPER_DATASETS[:5])
    p5 = pd.read_csv(tmp_path / "p5.csv", float_precision="round_trip")
    assert "avg" not in set(p5[p5.source == "paper"].dataset)
    assert set(p5[p5.source == "paper"].dataset) == set(PAPER_DATASETS[:5])


def test_missing_record_names_the_cell(tmp_path):
    path = write_recognition(tmp_path / "lp.json", "lp_top1", PAPER_BACKBONES, PAPER_DATASETS, 0)
    recs = [r for r in read_records(path)
            if not (r["backbone"] == "siglip2_b16" and r["variant"] == "aloe" and r["dataset"] == "dtd")]
    write_records(path, recs)
    with pytest.raises(MissingRecordError) as err:
        build_table("table2", [path], tmp_path / "t.csv", tmp_path / "t.tex")
    msg = str(err.value)
    for part in ("table2", "backbone='siglip2_b16'", "variant='aloe'", "dataset='dtd'", "metric='lp_top1'"):
        assert part in msg
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.tex").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_optional_variant_drops_only_whole_rows(tmp_path):
    full = write_recognition(tmp_path / "a.json", "lp_top1", ("siglip2_b16",), PAPER_DATASETS, 0)
    alone = write_recognition(tmp_path / "b.json", "lp_top1", ("siglip2_l16",), PAPER_DATASETS, 1,
                              variants=("teacher", "aloe"))
    table = build_table("tableB1", [full, alone], tmp_path / "b1.csv", tmp_path / "b1.tex")
    assert [r.label for r in table.blocks[1].rows] == ["Teacher", "ALOE"]  # no B-cosif., no delta row
    assert "Delta (ALOE - B-cosif.)" in [r.label for r in table.blocks[0].rows]
    with pytest.raises(MissingRecordError, match="variant='bcosification'"):  # Table 2 requires it
        build_table("table2", [full, alone], tmp_path / "t2.csv", tmp_path / "t2.tex")
    part = write_recognition(tmp_path / "c.json", "lp_top1", ("siglip2_l16",), PAPER_DATASETS[:3], 2,
                             variants=("bcosification",))
    with pytest.raises(MissingRecordError, match="dataset='food101'"):  # a partial row is an error
        build_table("tableB1", [full, alone, part], tmp_path / "b1.csv", tmp_path / "b1.tex")


def test_duplicate_records_are_an_error_unless_selected(tmp_path):
    a = write_recognition(tmp_path / "a.json", "zeroshot_top1", ("siglip2_b16",), ("imagenet1k",), 0)
    recs = [dict(r, params={"template_set": "single"}) for r in read_records(a)]
    recs += [dict(r, value=r["value"] - 1, params={"template_set": "openclip80"}) for r in read_records(a)]
    write_records(a, recs)
    with pytest.raises(ValueError, match="two records for cell"):
        build_table("table3b", [a], tmp_path / "z.csv", tmp_path / "z.tex")
    t = build_table("table3b", [a], tmp_path / "z.csv", tmp_path / "z.tex", select={"template_set": "openclip80"})
    aloe = next(r for r in t.blocks[0].rows if r.label == "ALOE").cells[0]
    want = next(r for r in recs if r["variant"] == "aloe" and r["params"]["template_set"] == "openclip80")
    assert aloe.value == want["value"]
    assert "\\textit{77.20}" in (tmp_path / "z.tex").read_text()  # paper's SigLIP2 ALOE zero-shot


def test_every_table_from_demo_records_compiles(tmp_path):
    files = write_demo_records(tmp_path / "records")
    assert set(files) == set(TABLES)
    out = tmp_path / "tables"
    tex_files = []
    for name in TABLES:
        build_table(name, files[name], out / f"{name}.csv", out / f"{name}.tex")
        tex_files.append(out / f"{name}.tex")
        df = pd.read_csv(out / f"{name}.csv", float_precision="round_trip")
        assert df.value.map(math.isfinite).all() and (df.table == name).all()
        assert "paper" not in set(df.source)  # demo backbones never get the paper's numbers
        printed = tex_numbers((out / f"{name}.tex").read_text())
        assert len(printed) == len(df)
        for row in df.itertuples():
            assert float(printed[(row.row_index, row.col_index)]) == pytest.approx(row.value, rel=0, abs=0.051)
    # pdflatex compiles all fragments in one document when installed; the syntax check runs always
    assert compile_fragments(tmp_path, tex_files) == ("pdflatex" if shutil.which("pdflatex") else "syntax")


def test_table3a_first_dataset_and_average(tmp_path):
    files = write_demo_records(tmp_path / "r")
    t = build_table("table3a", files["table3a"], tmp_path / "a.csv", tmp_path / "a.tex")
    assert t.columns == ["Shapes", "Avg."]
    knn = {(r["backbone"], r["variant"], r["dataset"]): r["value"] for r in read_records(files["table3a"][0])}
    aloe = next(r for r in t.blocks[0].rows if r.label == "ALOE")
    assert aloe.cells[1].value == pytest.approx(fmean(knn[("demo_vit", "aloe", d)] for d in DEMO_DATASETS))


def test_ablation_tables_order_average_and_bold(tmp_path):
    files = write_demo_records(tmp_path / "r")
    t4 = build_table("table4", files["table4"], tmp_path / "t4.csv", tmp_path / "t4.tex")
    assert t4.columns == ["Pool", "+L", "+{2/3, L}", "+{1/3, 2/3, L}", "+All"]
    recs = read_records(files["table4"][0])
    row = t4.blocks[0].rows[0]
    want = fmean(r["value"] for r in recs if r["backbone"] == "demo_vit" and r["variant"] == "aloe:depths=L")
    assert row.cells[1].value == pytest.approx(want)
    assert [c.bold for c in row.cells] == [c.value == max(x.value for x in row.cells) for c in row.cells]
    tex = (tmp_path / "t4.tex").read_text()
    assert r"+\{2/3, L\}" in tex  # braces escaped
    b8 = build_table("tableB8", files["tableB8"], tmp_path / "b8.csv", tmp_path / "b8.tex")
    assert b8.columns == ["MSE", "Cosine", "SigLIP", "InfoNCE"]
    df = pd.read_csv(tmp_path / "b8.csv", float_precision="round_trip")
    assert set(df.variant) == {"aloe:loss=mse", "aloe:loss=cosine", "aloe:loss=siglip", "aloe:loss=infonce"}


def test_dense_tables_bold_direction_and_units(tmp_path):
    files = write_demo_records(tmp_path / "r")
    b4 = build_table("tableB4", files["tableB4"], tmp_path / "b4.csv", tmp_path / "b4.tex")
    rows = [r for r in b4.blocks[0].rows if r.kind == "student"]
    for j, higher in enumerate((True, False, True, False)):  # delta1 up, RMSE down
        vals = [r.cells[j].value for r in rows]
        best = max(vals) if higher else min(vals)
        assert [r.cells[j].bold for r in rows] == [v == best for v in vals]
    assert "0." in (tmp_path / "b4.tex").read_text() and len(b4.columns) == 4
    b5 = build_table("tableB5", files["tableB5"], tmp_path / "b5.csv", tmp_path / "b5.tex")
    recs = {(r["backbone"], r["variant"], r["metric"]): r["value"] for r in read_records(files["tableB5"][0])}
    teacher = b5.blocks[0].rows[0]
    assert teacher.cells[0].value == pytest.approx(recs[("demo_vit", "teacher", "normals_frac_under_11.25")])
    assert teacher.cells[3].value == recs[("demo_vit", "teacher", "normals_rmse_deg")]
    df = pd.read_csv(tmp_path / "b5.csv", float_precision="round_trip")
    assert set(df[df.metric == "normals_rmse_deg"].unit) == {"deg"}


def test_gridpg_table(tmp_path):
    files = write_demo_records(tmp_path / "r")
    recs = [r for f in files["tableB6"] for r in read_records(f)]
    # the IG record of one teacher is absent: its cell prints "--", the table still builds
    recs = [r for r in recs if not (r["backbone"] == "demo_dinov3" and r["params"].get("method") == "ig")]
    write_records(tmp_path / "all.json", recs)
    t = build_table("tableB6", [tmp_path / "all.json"], tmp_path / "b6.csv", tmp_path / "b6.tex")
    assert t.columns == ["LP Teacher", "LP ALOE", "k-NN Teacher", "k-NN ALOE", "GridPG IG", "GridPG LIME",
                         "GridPG ALOE", "Delta GridPG"]
    grid = {(r["backbone"], r["variant"], r["params"].get("method")): r["value"]
            for r in recs if r["metric"] == "gridpg"}
    for row in t.blocks[0].rows:
        b = row.cells[0].backbone
        teacher = [v for (bb, var, _), v in grid.items() if bb == b and var == "teacher"]
        assert row.cells[6].value == pytest.approx(100 * grid[(b, "aloe", "bcos")])
        assert row.cells[7].value == pytest.approx(100 * (grid[(b, "aloe", "bcos")] - max(teacher)))
    assert t.blocks[0].rows[2].cells[4] is None
    for row in t.blocks[0].rows:
        assert not any(c.bold for c in row.cells if c is not None and c.variant == "teacher")
        assert row.cells[6].bold == (row.cells[7].value > 0)
    assert "& -- &" in (tmp_path / "b6.tex").read_text()
    with pytest.raises(MissingRecordError, match="method='bcos'"):
        write_records(tmp_path / "no_bcos.json", [r for r in recs if r["params"].get("method") != "bcos"])
        build_table("tableB6", [tmp_path / "no_bcos.json"], tmp_path / "x.csv", tmp_path / "x.tex")


def test_names_are_escaped_and_compile(tmp_path):
    escaped = r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert tex_escape("a_b & 50% #1 {x} ~^\\") == escaped
    rng = random.Random(0)
    recs = [make_record("lp_top1", rng.uniform(40, 90), backbone="my_net&co", variant=v, dataset="set_#1%")
            for v in ("teacher", "bcosification", "aloe")]
    write_records(tmp_path / "r.json", recs)
    build_table("table2", [tmp_path / "r.json"], tmp_path / "o.csv", tmp_path / "o.tex")
    tex = (tmp_path / "o.tex").read_text()
    assert r"my\_net\&co" in tex and r"set\_\#1\%" in tex
    compile_fragments(tmp_path, [tmp_path / "o.tex"])


def test_unknown_table_and_bad_variant(tmp_path):
    with pytest.raises(ValueError, match="unknown table 'table9'"):
        build_table("table9", [], tmp_path / "a.csv", tmp_path / "a.tex")
    write_records(tmp_path / "r.json", [make_record("lp_top1", 50.0, backbone="b", variant="aloe:width=2",
                                                    dataset="d")])
    with pytest.raises(ValueError, match="aloe:width=2"):
        build_table("table2", [tmp_path / "r.json"], tmp_path / "a.csv", tmp_path / "a.tex")


def test_paper_rows_in_ablation_and_gridpg_tables(tmp_path):
    rng = random.Random(3)
    recs = []
    for v in ("teacher", "aloe"):
        for m in ("lp_top1", "knn_top1"):
            recs.append(make_record(m, rng.uniform(70, 85), backbone="dinov3_b16", variant=v, dataset="imagenet1k"))
    for meth, variant in (("cp_lrp", "teacher"), ("ig", "teacher"), ("bcos", "aloe")):
        recs.append(make_record("gridpg", rng.uniform(0.3, 0.9), backbone="dinov3_b16", variant=variant,
                                dataset="imagenet1k", params={"method": meth}))
    for s in ("pool", "L", "2L3-L", "L3-2L3-L", "all"):
        for d in PAPER_DATASETS:
            recs.append(make_record("lp_top1", rng.uniform(70, 85), backbone="siglip2_b16", variant=f"aloe:depths={s}",
                                    dataset=d))
    write_records(tmp_path / "r.json", recs)
    build_table("tableB6", [tmp_path / "r.json"], tmp_path / "b6.csv", tmp_path / "b6.tex")
    paper = pd.read_csv(tmp_path / "b6.csv", float_precision="round_trip").query("source == 'paper'")
    # Table B6, DINOv3 ViT-B/16: LP 84.36 / 84.04, k-NN 82.27 / 81.39, LRP 62.02 (the authors' CP-LRP), IG 36.24,
    # ALOE 82.69
    assert list(paper.value) == [84.36, 84.04, 82.27, 81.39, 62.02, 36.24, 82.69]
    assert list(paper.metric) == ["lp_top1", "lp_top1", "knn_top1", "knn_top1", "gridpg/cp_lrp", "gridpg/ig",
                                  "gridpg/bcos"]
    build_table("table4", [tmp_path / "r.json"], tmp_path / "t4.csv", tmp_path / "t4.tex")
    t4 = pd.read_csv(tmp_path / "t4.csv", float_precision="round_trip")
    p4 = t4[t4.source == "paper"]
    assert list(p4.value) == [75.51, 77.85, 85.24, 85.42, 84.93] and set(p4.dataset) == {"avg"}
    # averaged over fewer datasets than the paper's ten: no paper row
    build_table("table4", [tmp_path / "r.json"], tmp_path / "t5.csv", tmp_path / "t5.tex", datasets=PAPER_DATASETS[:3])
    assert "paper" not in set(pd.read_csv(tmp_path / "t5.csv").source)


def test_caption_names_the_protocols_of_the_records(tmp_path):
    path = write_recognition(tmp_path / "lp.json", "lp_top1", PAPER_BACKBONES, PAPER_DATASETS, 0)
    records = read_records(path)
    for k, rec in enumerate(records):  # one teacher's records were made with the other LP protocol
        choice = "aloe_code" if rec["backbone"] == PAPER_BACKBONES[0] and rec["variant"] == "teacher" else "dinov2"
        rec["params"] = {**(rec.get("params") or {}), "protocols": {"linear_probe": choice, "eval_transform": "x"}}
    write_records(path, records)
    build_table("table2", [path], tmp_path / "t.csv", tmp_path / "t.tex")
    first = (tmp_path / "t.tex").read_text().splitlines()[0]
    assert first.endswith("Protocols: eval_transform=x; linear_probe=aloe_code/dinov2."), first
    bare = write_recognition(tmp_path / "bare.json", "lp_top1", PAPER_BACKBONES, PAPER_DATASETS, 0)
    build_table("table2", [bare], tmp_path / "b.csv", tmp_path / "b.tex")
    assert "Protocols:" not in (tmp_path / "b.tex").read_text()


def test_bold_needs_a_difference_larger_than_one_test_image(tmp_path):
    """Demo test sets are small (400 images: 0.25 points per image); a lead of one image is a tie."""
    def table(aloe_top1, bcos_top1, n=400):
        recs = [make_record("lp_top1", v, backbone="demo_vit", variant=variant, dataset=d, params={"num_test": n})
                for d in DEMO_DATASETS
                for variant, v in (("teacher", 90.0), ("bcosification", bcos_top1), ("aloe", aloe_top1))]
        path = tmp_path / f"lp_{aloe_top1}_{bcos_top1}_{n}.json"
        write_records(path, recs)
        t = build_table("table2", [path], tmp_path / "t.csv", tmp_path / "t.tex")
        rows = {r.label: r for r in t.blocks[0].rows}
        return [c.bold for c in rows["ALOE"].cells], [c.bold for c in rows["B-cosif."].cells], rows["ALOE"].cells

    aloe_bold, bcos_bold, _ = table(80.25, 80.0)  # one image apart: neither is bold
    assert not any(aloe_bold) and not any(bcos_bold)
    aloe_bold, bcos_bold, cells = table(80.75, 80.0)  # three images apart
    assert all(aloe_bold) and not any(bcos_bold)
    assert cells[0].resolution == pytest.approx(0.25) and cells[-1].resolution == pytest.approx(0.25)
    aloe_bold, bcos_bold, _ = table(80.25, 80.0, n=4000)  # ten images apart on a 10x larger test set
    assert all(aloe_bold) and not any(bcos_bold)
