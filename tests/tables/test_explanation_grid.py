"""The report's explanation grid drawn from a hand-built panels artifact (no model): the record
format of aloe.eval.explanation_panels, arrays written with safetensors' numpy API."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from aloe.io import write_json
from aloe.records import PANELS_FORMAT
from aloe.tables.explanations import (
    CELL_INCHES, DPI, FOOTER_INCHES, HEADER_INCHES, explanation_grid, over_black, read_panels,
)

METHODS = ["ig", "chefercam"]
N, S = 2, 24


def build_panels(root, backbones=(("demo_vit", METHODS, 24), ("demo_siglip", ["ig"], 16))):
    """A record and its arrays: per backbone its input, B-cos RGBA and method maps."""
    rng = np.random.default_rng(0)
    arrays, rows = {}, []
    for b, (name, own, size) in enumerate(backbones):
        arrays[f"{name}/input"] = rng.random((N, 3, size, size), dtype=np.float32)
        arrays[f"{name}/bcos"] = rng.random((N, size, size, 4), dtype=np.float32)
        for m in own:
            arrays[f"{name}/{m}"] = rng.uniform(-1, 1, (N, size, size)).astype(np.float32)
        rows.append({"name": name, "label": None, "image_size": size, "methods": list(own),
                     "student_pred": [b, 1], "teacher_pred": [2, b]})
    record = {"format": PANELS_FORMAT, "dataset": "shapes", "split": "test", "seed": 0, "keys": ["k7", "k3"],
              "labels": [0, 2], "class_names": ["circle", "square", "triangle"], "methods": METHODS,
              "method_options": {}, "backbones": rows,
              "tensors": {k: list(v.shape) for k, v in arrays.items()}}
    write_json(root / "panels.json", record)
    save_file(arrays, str(root / "panels.safetensors"))
    return record, arrays


def test_grid_png_from_panels(tmp_path):
    record, _ = build_panels(tmp_path)
    out = tmp_path / "plots" / "explanations.png"
    res = explanation_grid(out, record=tmp_path / "panels.json", panels=tmp_path / "panels.safetensors")
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    rows, cols = 2 * N, 2 + len(METHODS)
    expected = [round(cols * CELL_INCHES * DPI), round((rows * CELL_INCHES + HEADER_INCHES + FOOTER_INCHES) * DPI)]
    assert res["size_px"] == expected == [pixels.shape[1], pixels.shape[0]]
    assert pixels.std() > 10  # a drawn figure, not a blank canvas
    assert not list(out.parent.glob("*.tmp*"))  # atomic write left nothing behind
    assert res["columns"] == ["input", "bcos", "ig", "chefercam"]
    assert res["keys"] == ["k7", "k3"] and res["labels"] == [0, 2]
    # labels [0, 2]: a prediction other than the true class is flagged
    assert res["backbones"] == {
        "demo_vit": {"student_pred": [0, 1], "teacher_pred": [2, 0],
                     "mispredicted": {"student": [1], "teacher": [0, 1]}},
        "demo_siglip": {"student_pred": [1, 1], "teacher_pred": [2, 1],
                        "mispredicted": {"student": [0, 1], "teacher": [0, 1]}}}
    assert res["colour_scales"] == {"ig": "signed", "chefercam": "signed"}  # the test maps are in [-1, 1]
    # the n/a cell (SigLIP has no CheferCAM map) is drawn without an image: a blank cell of the last column
    cell, foot = round(CELL_INCHES * DPI), round(FOOTER_INCHES * DPI)
    siglip_cam = pixels[-cell - foot + 30 : -foot - 10, -cell + 10 : -10]
    vit_cam = pixels[round(HEADER_INCHES * DPI) + 30 : round(HEADER_INCHES * DPI) + cell - 10, -cell + 10 : -10]
    assert vit_cam.std() > 2 * siglip_cam.std() and siglip_cam.mean() > 250 > vit_cam.mean()  # white but the text


def test_over_black():
    rgba = np.array([[[1.0, 0.5, 0.0, 0.5], [0.2, 0.4, 0.6, 0.0]]], dtype=np.float32)
    assert np.allclose(over_black(rgba), [[[0.5, 0.25, 0.0], [0.0, 0.0, 0.0]]])


def test_record_and_arrays_must_match(tmp_path):
    record, arrays = build_panels(tmp_path)
    rec, found = read_panels(tmp_path / "panels.json", tmp_path / "panels.safetensors")
    assert rec == record and set(found) == set(arrays)
    assert all(np.array_equal(found[k], arrays[k]) for k in arrays)
    save_file({k: v for k, v in arrays.items() if k != "demo_vit/ig"}, str(tmp_path / "fewer.safetensors"))
    with pytest.raises(ValueError, match="demo_vit/ig"):
        explanation_grid(tmp_path / "x.png", record=tmp_path / "panels.json", panels=tmp_path / "fewer.safetensors")
    save_file(dict(arrays, **{"demo_vit/ig": arrays["demo_vit/ig"][:1]}), str(tmp_path / "short.safetensors"))
    with pytest.raises(ValueError, match="shape differ"):
        explanation_grid(tmp_path / "x.png", record=tmp_path / "panels.json", panels=tmp_path / "short.safetensors")
    (tmp_path / "metric.json").write_text(json.dumps([{"metric": "lp_top1"}]))
    with pytest.raises(ValueError, match="not an explanation-panels record"):
        explanation_grid(tmp_path / "x.png", record=tmp_path / "metric.json", panels=tmp_path / "panels.safetensors")
    assert not (tmp_path / "x.png").exists()


def test_renderer_loads_no_torch():
    code = "import sys, aloe.tables, aloe.tables.explanations, aloe.tables.html; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_non_negative_maps_get_a_one_sided_scale(tmp_path):
    record, arrays = build_panels(tmp_path)
    arrays = {k: (np.abs(v) if k.endswith("/chefercam") else v) for k, v in arrays.items()}
    save_file(arrays, str(tmp_path / "panels.safetensors"))
    res = explanation_grid(tmp_path / "g.png", record=tmp_path / "panels.json", panels=tmp_path / "panels.safetensors")
    assert res["colour_scales"] == {"ig": "signed", "chefercam": "one-sided"}


def test_pca_view_from_panels(tmp_path):
    from aloe.tables.pca_plot import pca_figure

    record, arrays = build_panels(tmp_path)
    with pytest.raises(ValueError, match="rerun rule explanation_panels"):  # panels made before the PCA view
        pca_figure(tmp_path / "pca.png", record=tmp_path / "panels.json", panels=tmp_path / "panels.safetensors")
    rng = np.random.default_rng(1)
    for e in record["backbones"]:
        for v in ("teacher", "aloe"):
            arrays[f"{e['name']}/pca_{v}"] = rng.random((N, 3, 3, 3), dtype=np.float32)
    record["tensors"] = {k: list(v.shape) for k, v in arrays.items()}
    write_json(tmp_path / "panels.json", record)
    save_file(arrays, str(tmp_path / "panels.safetensors"))
    res = pca_figure(tmp_path / "pca.png", record=tmp_path / "panels.json", panels=tmp_path / "panels.safetensors")
    with Image.open(tmp_path / "pca.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert res["images"] == N and res["rows"] == [(b, w) for b in ("demo_vit", "demo_siglip")
                                                  for w in ("input", "teacher PCA", "ALOE PCA")]


def test_zero_shot_figure_from_panels(tmp_path):
    from aloe.tables.zeroshot_plot import zero_shot_figure

    record, arrays = build_panels(tmp_path)
    files = dict(record=tmp_path / "panels.json", panels=tmp_path / "panels.safetensors")
    res = zero_shot_figure(tmp_path / "none.png", **files)
    assert res["backbones"] == [] and (tmp_path / "none.png").read_bytes()[:4] == b"\x89PNG"  # says: no SigLIP
    arrays["demo_siglip/zeroshot"] = np.random.default_rng(2).random((N, 2, 16, 16, 4), dtype=np.float32)
    record["backbones"][1]["zero_shot"] = True
    record["zero_shot_prompts"] = ["a photo of a circle.", "a photo of a triangle."]
    record["tensors"] = {k: list(v.shape) for k, v in arrays.items()}
    write_json(tmp_path / "panels.json", record)
    save_file(arrays, str(tmp_path / "panels.safetensors"))
    res = zero_shot_figure(tmp_path / "zs.png", **files)
    assert res["backbones"] == ["demo_siglip"] and res["prompts"] == record["zero_shot_prompts"]
    with Image.open(tmp_path / "zs.png") as im:
        assert im.size[0] > im.size[1] / 2 > 100
