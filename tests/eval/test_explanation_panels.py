"""The explanation grid's panels (aloe.eval.explanation_panels) on tiny real teachers, their B-cos
students, saved linear heads and the tiny synthetic world; then the grid drawn from them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from aloe.data.synthetic_world import SYNTHETIC_PRESETS, make_synthetic_world
from aloe.eval.classifier import ProbedClassifier, load_head
from aloe.eval.explanation_panels import (
    bcos_rgba, heat_map, images_by_key, pick_images, run_explanation_panels,
)
from aloe.io import read_json
from aloe.models import bcosify, load_teacher
from aloe.models.backbones import checkpoint_checksum, load_backbone
from aloe.records import PANELS_FORMAT
from aloe.tables.explanations import CELL_INCHES, DPI, FOOTER_INCHES, HEADER_INCHES, explanation_grid, over_black
from aloe.tensorfile import tensors_checksum

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_teachers import make_teacher_dir

NUM_CLASSES = SYNTHETIC_PRESETS["tiny"]["num_classes"]
METHODS = ["ig", "lime", "chefercam"]
OPTIONS = {"ig": {"n_steps": 8}, "lime": {"block": 8, "n_samples": 24}}


def save_head(path: Path, backbone_dir: Path, hidden: int, seed: int) -> Path:
    """A random head in run_linear_probe's format: weight (D, C), bias (C,), provenance metadata."""
    g = torch.Generator().manual_seed(seed)
    tensors = {"weight": torch.randn(hidden, NUM_CLASSES, generator=g), "bias": torch.randn(NUM_CLASSES, generator=g)}
    save_file(tensors, str(path), metadata={"backbone_checksum": checkpoint_checksum(backbone_dir),
                                            "dataset": "shapes"})
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("panels")
    world = root / "world"
    make_synthetic_world(world, seed=0, **SYNTHETIC_PRESETS["tiny"])
    backbones = []
    for i, (name, family) in enumerate((("demo_vit", "vit"), ("demo_siglip", "siglip"), ("demo_dinov3", "dinov3"))):
        t_dir = make_teacher_dir(family, root / name / "teacher", seed=i)
        teacher = load_teacher(str(t_dir))
        s_dir = root / name / "aloe"
        bcosify(teacher, b=2, stem="linear").save_pretrained(s_dir)
        backbones.append({
            "name": name, "teacher_path": str(t_dir), "student_path": str(s_dir),
            "teacher_head": str(save_head(root / name / "teacher.head.safetensors", t_dir, teacher.hidden_size,
                                          10 + i)),
            "student_head": str(save_head(root / name / "aloe.head.safetensors", s_dir, teacher.hidden_size, 20 + i)),
        })
    backbones[1]["methods"] = ["ig", "lime"]  # CheferCAM needs a [CLS] token: SigLIP's cells read n/a
    return root, world / "shapes", backbones


@pytest.fixture(scope="module")
def panels(study):
    root, shapes, backbones = study
    out, panels_out = root / "explanations" / "panels.json", root / "explanations" / "panels.safetensors"
    rec = run_explanation_panels(out, panels_out=panels_out, backbones=backbones, dataset_dir=str(shapes),
                                 dataset="shapes", num_images=3, seed=0, methods=METHODS, method_options=OPTIONS)
    return rec, out, panels_out


def test_panels_artifact(study, panels):
    _, shapes, backbones = study
    rec, out, panels_out = panels
    assert read_json(out) == rec and rec["format"] == PANELS_FORMAT
    assert not list(out.parent.glob("*.tmp*"))  # atomic writes left nothing behind
    assert rec["dataset"] == "shapes" and rec["split"] == "test" and rec["methods"] == METHODS
    assert rec["method_options"] == OPTIONS
    # distinct classes, sorted by label
    assert len(rec["keys"]) == 3 and rec["labels"] == sorted(set(rec["labels"]))
    assert rec["panels_checksum"] == tensors_checksum([panels_out])
    with safe_open(str(panels_out), framework="pt") as f:
        assert f.metadata()["format"] == PANELS_FORMAT
    arrays = load_file(str(panels_out))
    assert {k: list(v.shape) for k, v in arrays.items()} == rec["tensors"]
    assert all(a.dtype == torch.float32 for a in arrays.values())
    images = images_by_key(str(shapes), "test", 32, rec["keys"])
    expected_names = set()
    for entry, row in zip(backbones, rec["backbones"], strict=True):
        name, own = entry["name"], entry.get("methods", METHODS)
        assert row["name"] == name and row["methods"] == own and row["image_size"] == 32
        assert row["teacher_checksum"] == checkpoint_checksum(entry["teacher_path"])
        assert row["student_checksum"] == checkpoint_checksum(entry["student_path"])
        expected_names |= {f"{name}/input", f"{name}/bcos", *(f"{name}/{m}" for m in own), f"{name}/pca_teacher",
                           f"{name}/pca_aloe"}
        for v in ("teacher", "aloe"):  # 32 px images of 8 px patches (the demo teachers): a 4 x 4 grid
            pca = arrays[f"{name}/pca_{v}"]
            assert pca.shape == (3, 4, 4, 3) and 0 <= pca.min() and pca.max() <= 1 and pca.std() > 0.05
        # the images the predictions were made on
        assert torch.equal(arrays[f"{name}/input"], images) and arrays[f"{name}/input"].shape == (3, 3, 32, 32)
        bcos = arrays[f"{name}/bcos"]
        assert bcos.shape == (3, 32, 32, 4) and torch.isfinite(bcos).all() and 0 <= bcos.min() and bcos.max() <= 1
        assert bcos[..., 3].amax() > 0.5  # alpha scaled by its 99.5th percentile: some evidence is shown
        for m in own:
            a = arrays[f"{name}/{m}"]
            assert a.shape == (3, 32, 32) and torch.isfinite(a).all() and a.abs().max() <= 1
            # scaled by its 99.5th |percentile| per image: peaks at 1 (LIME from 24 samples may find no evidence)
            peaks = a.abs().flatten(1).amax(1).tolist()
            assert set(peaks) <= {0.0, 1.0} and (m == "lime" or peaks == [1.0] * 3)
        # the predictions are the heads' argmax on those images
        for kind, path, head in (("teacher", entry["teacher_path"], entry["teacher_head"]),
                                 ("student", entry["student_path"], entry["student_head"])):
            clf = ProbedClassifier(load_backbone(path, kind), *load_head(head, path)).eval()
            with torch.no_grad():
                pred = clf(images).argmax(1).tolist()
            assert row[f"{kind}_pred"] == pred
    assert set(arrays) == expected_names
    assert "demo_siglip/chefercam" not in arrays


def test_grid_drawn_from_the_panels(study, panels):
    root, _, backbones = study
    rec, out, panels_out = panels
    png = root / "plots" / "explanations.png"
    res = explanation_grid(png, record=out, panels=panels_out)
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    rows, cols = len(backbones) * 3, 2 + len(METHODS)
    expected = [round(cols * CELL_INCHES * DPI), round((rows * CELL_INCHES + HEADER_INCHES + FOOTER_INCHES) * DPI)]
    assert res["size_px"] == expected == [pixels.shape[1], pixels.shape[0]]
    assert pixels.std() > 10  # a drawn figure, not a blank canvas
    assert not list(png.parent.glob("*.tmp*"))
    assert res["columns"] == ["input", "bcos", "ig", "lime", "chefercam"]
    assert res["keys"] == rec["keys"] and res["labels"] == rec["labels"]
    assert {n: {k: b[k] for k in ("student_pred", "teacher_pred")} for n, b in res["backbones"].items()} == {
        r["name"]: {"student_pred": r["student_pred"], "teacher_pred": r["teacher_pred"]} for r in rec["backbones"]}
    for r in rec["backbones"]:  # flagged: exactly the predictions that are not the true class
        assert res["backbones"][r["name"]]["mispredicted"]["student"] == [
            i for i, (p, t) in enumerate(zip(r["student_pred"], rec["labels"])) if p != t]


def test_pick_images_deterministic_and_order_free(study):
    _, shapes, _ = study
    px, labels, keys = pick_images(str(shapes), "test", 32, 3, seed=0)
    px2, labels2, keys2 = pick_images(str(shapes), "test", 32, 3, seed=0)
    assert keys == keys2 and torch.equal(px, px2)
    assert px.shape == (3, 3, 32, 32) and len(set(labels.tolist())) == 3
    # with more images than classes, one image per class
    _, all_labels, _ = pick_images(str(shapes), "test", 32, 10, seed=0)
    assert all_labels.tolist() == list(range(NUM_CLASSES))
    # another seed picks other samples (5 per class, so 4 seeds agreeing everywhere would be a bug)
    assert len({tuple(pick_images(str(shapes), "test", 32, 4, seed=s)[2]) for s in range(4)}) > 1
    # the rank is per key, not per position: the labels of the picked keys are what the loader says
    assert torch.equal(images_by_key(str(shapes), "test", 32, keys), px)


def test_head_of_other_backbone_refused(study):
    root, shapes, backbones = study
    swapped = [dict(backbones[0], student_head=backbones[0]["teacher_head"])]
    bad = root / "bad" / "panels.json"
    with pytest.raises(ValueError, match="checksum mismatch"):
        run_explanation_panels(bad, panels_out=bad.with_suffix(".safetensors"), backbones=swapped,
                               dataset_dir=str(shapes), dataset="shapes", num_images=1)
    assert not bad.exists() and not bad.with_suffix(".safetensors").exists()


def test_bad_arguments_named(study):
    root, shapes, backbones = study
    kw = dict(panels_out=root / "x.safetensors", dataset_dir=str(shapes), dataset="shapes")
    with pytest.raises(ValueError, match="student_head"):
        run_explanation_panels(root / "x.json", backbones=[{"name": "demo_vit", "teacher_path": "a",
                                                             "teacher_head": "b", "student_path": "c"}], **kw)
    with pytest.raises(ValueError, match="B-cos column"):
        run_explanation_panels(root / "x.json", backbones=backbones, methods=["bcos"], **kw)
    with pytest.raises(ValueError, match="not in methods"):
        run_explanation_panels(root / "x.json", backbones=backbones, methods=["ig"], **kw)
    with pytest.raises(ValueError, match="repeat"):
        run_explanation_panels(root / "x.json", backbones=[backbones[0], backbones[0]], methods=METHODS, **kw)
    with pytest.raises(ValueError, match="classification"):
        run_explanation_panels(root / "x.json", backbones=backbones[:1], methods=METHODS,
                               **dict(kw, dataset_dir=str(shapes.parent / "depth")))
    assert not (root / "x.json").exists()


def test_panel_maps():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 32, 32, generator=g)
    x6 = torch.cat([torch.rand(3, 32, 32, generator=g)] * 2)
    x6[3:] = 1 - x6[:3]
    rgba = bcos_rgba(w, w * x6)
    assert rgba.shape == (32, 32, 4) and rgba.dtype == np.float32
    rgb = over_black(rgba)
    assert rgb.shape == (32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1 and rgb.max() > 0.2
    # where every contribution is negative the explanation is black (alpha 0)
    assert over_black(bcos_rgba(w.abs(), -(w.abs() * x6))).max() == 0
    a = torch.randn(3, 32, 32, generator=g)
    h = heat_map(a)
    assert h.shape == (32, 32) and h.dtype == np.float32 and np.abs(h).max() == pytest.approx(1.0)
    # signs are kept: the channel sum's sign at each pixel
    s = a.sum(0).numpy()
    assert (np.sign(h) == np.sign(s))[np.abs(s) > 1e-6].all()


def test_pca_view_puts_the_main_direction_of_variation_in_red():
    from types import SimpleNamespace

    from aloe.eval.explanation_panels import pca_rgb

    g = torch.Generator().manual_seed(0)
    strength = torch.rand(2, 16, generator=g)  # 2 images of 4 x 4 patches
    direction = torch.nn.functional.normalize(torch.randn(8, generator=g), dim=0)

    class Fake:
        num_prefix_tokens, patch_size = 1, 4

        def __call__(self, images):
            tokens = strength[..., None] * 5 * direction + 0.01 * torch.randn(2, 16, 8, generator=g)
            return SimpleNamespace(last_hidden_state=torch.cat([torch.zeros(2, 1, 8), tokens], dim=1))

    rgb = pca_rgb(Fake(), torch.zeros(2, 3, 16, 16))
    assert rgb.shape == (2, 4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    red = torch.from_numpy(rgb[..., 0]).flatten()
    order = torch.argsort(strength.flatten())
    assert (red[order].diff() >= -0.02).all()  # red follows the strength along that direction (sign fixed)


def test_zero_shot_panels_explain_the_similarity_to_each_prompt(tmp_path):
    from eval_helpers import save_tiny_teacher

    from aloe.eval.explanation_panels import bcos_rgba, zero_shot_panels, zero_shot_prompts
    from aloe.eval.zeroshot import build_siglip_classifier
    from aloe.models import explain

    teacher = load_teacher(str(save_tiny_teacher(tmp_path / "siglip", "siglip", seed=3)))
    student = bcosify(teacher, b=2, stem="linear")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    names = ["circle", "square", "star"]
    maps = zero_shot_panels(teacher, student, images, names, [0, 2])
    assert maps.shape == (2, 2, 32, 32, 4) and np.isfinite(maps).all()
    assert zero_shot_prompts(names, [0, 2]) == ["a photo of a circle.", "a photo of a star."]
    # panel (i, j): W(x)x of image i's embedding . the text embedding of prompt j
    text, _, _ = build_siglip_classifier(teacher.hf_model, teacher.tokenizer, ["star"], ["a photo of a {}."])
    e = explain(student, images, lambda o: (o.pooler_output.float() * text[:, 0]).sum(1))
    np.testing.assert_allclose(maps[1, 1], bcos_rgba(e.weights[1], e.image[1]), atol=1e-5)
    assert not np.allclose(maps[:, 0], maps[:, 1])  # another prompt, another explanation
    vit = load_teacher(str(save_tiny_teacher(tmp_path / "vit", "vit")))
    assert zero_shot_panels(vit, bcosify(vit, b=2, stem="linear"), images, names, [0]) is None  # no text tower
