"""``paper_numbers.json`` against the paper's text: every transcribed number is printed in its table,
in the row of its backbone / variant and the column of its dataset / metric."""

from __future__ import annotations

import math

import pytest
from paper_text import PAPER_TABLES, number, paper_path, printed_cell, table_lines

from aloe.io import read_json
from aloe.tables.paper import PAPER_NUMBERS, PaperNumbers
from aloe.tables.specs import TABLES


@pytest.fixture(scope="module")
def paper_text():
    return paper_path().read_text(encoding="utf-8")


def _entries():
    return [(name, e) for name, entries in read_json(PAPER_NUMBERS)["tables"].items() for e in entries]


def test_every_transcribed_number_is_printed_in_its_table_cell(paper_text):
    entries = _entries()
    assert len(entries) == 361 and {name for name, _ in entries} == set(PAPER_TABLES)
    wrong = []
    for name, e in entries:
        where = f"{name} {e['backbone']} / {e['variant']} / {e['dataset']} / {e['metric']}"
        try:
            cell = printed_cell(paper_text, name, e)
        except LookupError as err:
            wrong.append(f"{where}: not found in the paper ({err})")
            continue
        printed = number(cell)
        if printed is None or not math.isclose(printed, e["value"], abs_tol=1e-9):
            wrong.append(f"{where}: json {e['value']}, the paper prints {cell!r}")
    assert not wrong, "paper_numbers.json disagrees with the paper:\n" + "\n".join(wrong)


def test_entries_name_known_tables_and_cells():
    for name, e in _entries():
        assert name in TABLES
        assert set(e) <= {"backbone", "variant", "dataset", "metric", "value", "note"}, e
        assert isinstance(e["value"], float | int) and not isinstance(e["value"], bool)


def test_parser_reads_the_cells_it_claims(paper_text):
    # spot checks by hand from the paper, so a parser that reads the wrong row or column fails here
    cases = {
        ("table2", "dinov3_b16", "bcosification", "stanford_cars", "lp_top1"): "54.70",
        ("tableB1", "dinov3_b16", "aloe", "avg", "lp_top1"): "90.01",  # not the ViT-S/16 or ViT-L/16 rows
        ("tableB2", "siglip2_b16", "teacher", "fgvc_aircraft", "knn_top1"): "65.20",
        ("table3a", "dinov3_b16", "bcosification", "avg", "knn_top1"): "50.77",
        ("table3b", "siglip2_b16", "bcosification", "imagenet1k", "zeroshot_top1"): "61.01",
        ("tableB3", "siglip2_b16", "aloe", "imagenet1k", "zeroshot_top1"): "77.20",  # not the B-ViT-L/16 row
        ("tableB4", "dinov3_b16", "aloe", "nyuv2", "depth_abs_rmse"): "0.4850",
        ("tableB6", "siglip2_b16", "teacher", "*", "gridpg/legrad"): "-",
        ("tableB6", "vit_b16_sup", "aloe", "imagenet1k", "knn_top1"): "80.77",
        ("tableB8", "vit_b16_sup", "aloe:loss=infonce", "imagenet1k", "lp_top1"): "80.9",
        ("table4", "siglip2_b16", "aloe:depths=L", "avg", "lp_top1"): "77.85",
    }
    for (name, b, v, d, m), want in cases.items():
        assert printed_cell(paper_text, name, dict(backbone=b, variant=v, dataset=d, metric=m)) == want
    with pytest.raises(ValueError, match="expected one"):
        table_lines(paper_text, "Table 9. ", "after")


def test_paper_typo_is_kept_and_noted():
    # Table 2 prints 97.61 for supervised ALOE on CIFAR-100 beside a teacher at 86.05; its delta row
    # (+23.00 = 97.61 - 74.61) agrees, so the paper's value is kept with a note
    paper = PaperNumbers("table2")
    assert paper.get("vit_b16_sup", "aloe", "cifar100", "lp_top1") == 97.61
    assert "likely typo" in paper.note("vit_b16_sup", "aloe", "cifar100", "lp_top1")
    assert paper.note("vit_b16_sup", "teacher", "cifar100", "lp_top1") == ""
    noted = [(n, e) for n, e in _entries() if "note" in e]
    assert [(n, e["backbone"], e["variant"], e["dataset"]) for n, e in noted] == [
        ("table2", "vit_b16_sup", "aloe", "cifar100")]


def test_paper_averages_agree_with_their_rows_except_the_noted_typo():
    rows: dict = {}
    for name, e in _entries():
        if e["metric"] == "lp_top1" or e["metric"] == "knn_top1":
            rows.setdefault((name, e["backbone"], e["variant"]), {})[e["dataset"]] = e
    checked, off = 0, []
    for key, cells in rows.items():
        if "avg" not in cells or len(cells) != 11:
            continue
        mean = sum(c["value"] for d, c in cells.items() if d != "avg") / 10
        checked += 1
        if abs(mean - cells["avg"]["value"]) > 0.005 + 1e-9:
            off.append((key, round(mean, 3), any("note" in c for c in cells.values())))
    assert checked == 27
    # the one row whose printed average disagrees is the one whose C100 value carries the typo note
    assert off == [(("table2", "vit_b16_sup", "aloe"), 81.24, True)]
