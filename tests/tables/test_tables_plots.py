"""Fig. 9 / B2 (data efficiency) and Fig. 1 right (GridPG vs accuracy) from records."""

from __future__ import annotations

import pytest
from PIL import Image
from tables_helpers import DEMO_BACKBONES, write_demo_records

from aloe.records import read_records, write_records
from aloe.tables import MissingRecordError, plot_data_efficiency, plot_gridpg_vs_accuracy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 200 and im.size[1] > 200
    assert not list(path.parent.glob(".*tmp*"))  # atomic write left no temp file


def test_data_efficiency_plot(tmp_path, monkeypatch):
    files = write_demo_records(tmp_path / "r")
    paths = files["table4"] + files["table2"]  # ablation records + main LP records (teacher, B-cosif. refs)
    data = plot_data_efficiency(paths, tmp_path / "fig9.png")
    _check_png(tmp_path / "fig9.png")
    assert list(data) == list(DEMO_BACKBONES)
    for b, series in data.items():
        assert series["fractions"] == [0.01, 0.1, 0.5, 1.0]
        assert series["values"] == pytest.approx([60.2, 62.0, 70.0, 80.0])
    lp = {(r["backbone"], r["variant"], r["dataset"]): r["value"] for r in read_records(files["table2"][0])}
    assert data["demo_vit"]["teacher"] == lp[("demo_vit", "teacher", "shapes")]
    assert data["demo_vit"]["bcosification"] == lp[("demo_vit", "bcosification", "shapes")]
    # values a few points apart still get a 10-point y range: no trend drawn from one test image
    from aloe.tables import plots
    seen, real_save = {}, plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: (seen.setdefault("ylim", fig.axes[0].get_ylim()),
                                                          real_save(fig, out)))
    from aloe.records import make_record
    flat = tmp_path / "flat.json"
    write_records(flat, [make_record("lp_top1", v, backbone="demo_vit", variant=f"aloe:data={f}", dataset="shapes")
                         for f, v in (("0.5", 70.0), ("1", 70.5))])
    plot_data_efficiency([flat], tmp_path / "flat.png")
    low, high = seen["ylim"]
    assert high - low >= plots.MIN_SPAN and low < 70.0 and high > 70.5
    # without the main records the reference lines are simply absent
    only = plot_data_efficiency(files["table4"], tmp_path / "b2.png", backbones=["demo_dinov3"])
    assert list(only) == ["demo_dinov3"] and only["demo_dinov3"]["teacher"] is None
    with pytest.raises(MissingRecordError, match="aloe:data"):
        plot_data_efficiency(files["table2"], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_gridpg_vs_accuracy_plot(tmp_path):
    files = write_demo_records(tmp_path / "r")
    points = plot_gridpg_vs_accuracy(files["tableB6"], tmp_path / "fig1.png")
    _check_png(tmp_path / "fig1.png")
    assert len(points) == 3 * (2 + 1)  # per backbone: IG and LIME on the teacher, B-cos on ALOE
    recs = [r for f in files["tableB6"] for r in read_records(f)]
    lp = {(r["backbone"], r["variant"]): r["value"]
          for r in recs if r["metric"] == "lp_top1" and r["dataset"] == "shapes"}
    grid = {(r["backbone"], r["variant"], r["params"]["method"]): r["value"] for r in recs if r["metric"] == "gridpg"}
    for p in points:
        assert p["accuracy"] == lp[(p["backbone"], p["variant"])]
        assert p["gridpg"] == pytest.approx(100 * grid[(p["backbone"], p["variant"], p["method"])])
    assert {p["method"] for p in points if p["variant"] == "aloe"} == {"bcos"}
    no_lp = [r for r in recs if not (r["metric"] == "lp_top1" and r["backbone"] == "demo_siglip")]
    write_records(tmp_path / "no_lp.json", no_lp)
    with pytest.raises(MissingRecordError, match="backbone='demo_siglip'.*metric='lp_top1'"):
        plot_gridpg_vs_accuracy([tmp_path / "no_lp.json"], tmp_path / "x.png")


def test_deletion_curves_plot(tmp_path):
    from aloe.records import make_record, make_unavailable_record, MetricUnavailable
    from aloe.tables.deletion_plot import plot_deletion_curves

    fractions = [0.0, 0.4, 0.8]
    recs = []
    for b in ("demo_vit", "demo_dinov3"):
        for variant, method, curve in (("teacher", "ig", [0.9, 0.6, 0.3]), ("aloe", "bcos", [0.9, 0.3, 0.1]),
                                       ("teacher", "legrad", [0.9, 0.7, 0.5])):
            area = sum((curve[i] + curve[i + 1]) / 2 * 0.4 for i in range(2))
            recs.append(make_record("deletion_area", area, backbone=b, variant=variant, dataset="shapes",
                                    params={"method": method, "fractions": fractions, "curve": curve}))
    recs.append(make_unavailable_record("deletion_area", MetricUnavailable("no confident image", {}),
                                        backbone="demo_vit", variant="teacher", dataset="shapes",
                                        params={"method": "lime"}))
    write_records(tmp_path / "del.json", recs)
    data = plot_deletion_curves([tmp_path / "del.json"], tmp_path / "figB3.png")
    _check_png(tmp_path / "figB3.png")
    assert list(data) == ["demo_vit", "demo_dinov3"]  # the paper's backbone order
    vit = data["demo_vit"]
    # ALOE first, then the teacher's methods in the paper's method order (ig, legrad, lime)
    assert [(c["variant"], c["method"]) for c in vit] == [("aloe", "bcos"), ("teacher", "ig"), ("teacher", "legrad"),
                                                          ("teacher", "lime")]
    assert vit[0]["curve"] == [0.9, 0.3, 0.1] and vit[0]["area"] == pytest.approx(0.32)
    assert vit[3]["status"] == "unavailable" and "no confident image" in vit[3]["reason"]
    with pytest.raises(MissingRecordError, match="demo_siglip"):
        plot_deletion_curves([tmp_path / "del.json"], tmp_path / "x.png", backbones=["demo_siglip"])
