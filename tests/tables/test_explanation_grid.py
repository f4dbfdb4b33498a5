"""The report's explanation grid on tiny real teachers, their B-cos students, saved linear heads
and the tiny synthetic world."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from aloe.data.synthetic_world import SYNTHETIC_PRESETS, make_synthetic_world
from aloe.eval.classifier import ProbedClassifier, load_head
from aloe.models import bcosify, load_teacher
from aloe.models.backbones import checkpoint_checksum, load_backbone
from aloe.tables.explanations import (
    CELL_INCHES, DPI, HEADER_INCHES, bcos_rgb, explanation_grid, heat_map, images_by_key, pick_images,
)  # fmt: skip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_teachers import make_teacher_dir  # noqa: E402

NUM_CLASSES = SYNTHETIC_PRESETS["tiny"]["num_classes"]


def save_head(path: Path, backbone_dir: Path, hidden: int, seed: int) -> Path:
    """A random head in run_linear_probe's format: weight (D, C), bias (C,), provenance metadata."""
    g = torch.Generator().manual_seed(seed)
    tensors = {"weight": torch.randn(hidden, NUM_CLASSES, generator=g), "bias": torch.randn(NUM_CLASSES, generator=g)}
    save_file(tensors, str(path), metadata={"backbone_checksum": checkpoint_checksum(backbone_dir),
                                            "dataset": "shapes"})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
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
            "teacher_head": str(save_head(root / name / "teacher.head.safetensors", t_dir, teacher.hidden_size, 10 + i)),
            "student_head": str(save_head(root / name / "aloe.head.safetensors", s_dir, teacher.hidden_size, 20 + i)),
        })  # fmt: skip
    backbones[1]["methods"] = ["ig", "lime"]  # CheferCAM needs a [CLS] token: SigLIP's cells read n/a
    return root, world / "shapes", backbones


def test_grid_png_and_predictions(study):
    root, shapes, backbones = study
    out = root / "plots" / "explanations.png"
    num_images, methods = 3, ["ig", "lime", "chefercam"]
    res = explanation_grid(out, backbones=backbones, dataset_dir=str(shapes), num_images=num_images, seed=0,
                           methods=methods, method_options={"ig": {"n_steps": 8}, "lime": {"block": 8, "n_samples": 24}})  # fmt: skip
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    rows, cols = len(backbones) * num_images, 2 + len(methods)
    expected = [round(cols * CELL_INCHES * DPI), round((rows * CELL_INCHES + HEADER_INCHES) * DPI)]
    assert res["size_px"] == expected == [pixels.shape[1], pixels.shape[0]]
    assert pixels.std() > 10  # a drawn figure, not a blank canvas
    assert not list(out.parent.glob("*.tmp*"))  # atomic write left nothing behind
    assert res["columns"] == ["input", "bcos", "ig", "lime", "chefercam"]
    # distinct classes, sorted by label; the images are the ones the predictions were made on
    assert len(res["keys"]) == num_images and res["labels"] == sorted(set(res["labels"]))
    images = images_by_key(str(shapes), "test", 32, res["keys"])
    for entry in backbones:
        for kind, path, head in (("teacher", entry["teacher_path"], entry["teacher_head"]),
                                 ("student", entry["student_path"], entry["student_head"])):  # fmt: skip
            clf = ProbedClassifier(load_backbone(path, kind), *load_head(head, path)).eval()
            with torch.no_grad():
                pred = clf(images).argmax(1).tolist()
            assert res["backbones"][entry["name"]][f"{kind}_pred"] == pred


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
    with pytest.raises(ValueError, match="checksum mismatch"):
        explanation_grid(root / "bad.png", backbones=swapped, dataset_dir=str(shapes), num_images=1)
    assert not (root / "bad.png").exists()


def test_bad_arguments_named(study):
    root, shapes, backbones = study
    with pytest.raises(ValueError, match="student_head"):
        explanation_grid(root / "x.png", backbones=[{"name": "demo_vit", "teacher_path": "a", "teacher_head": "b",
                                                      "student_path": "c"}], dataset_dir=str(shapes))  # fmt: skip
    with pytest.raises(ValueError, match="B-cos column"):
        explanation_grid(root / "x.png", backbones=backbones, dataset_dir=str(shapes), methods=["bcos"])
    with pytest.raises(ValueError, match="classification"):
        explanation_grid(root / "x.png", backbones=backbones[:1], dataset_dir=str(shapes.parent / "depth"))


def test_renderers():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 32, 32, generator=g)
    x6 = torch.cat([torch.rand(3, 32, 32, generator=g)] * 2)
    x6[3:] = 1 - x6[:3]
    rgb = bcos_rgb(w, w * x6)
    assert rgb.shape == (32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1 and rgb.max() > 0.2
    # where every contribution is negative the explanation is black (alpha 0)
    assert bcos_rgb(w.abs(), -(w.abs() * x6)).max() == 0
    a = torch.randn(3, 32, 32, generator=g)
    h = heat_map(a)
    assert h.shape == (32, 32) and np.abs(h).max() == pytest.approx(1.0)
    # signs are kept: the channel sum's sign at each pixel
    s = a.sum(0).numpy()
    assert (np.sign(h) == np.sign(s))[np.abs(s) > 1e-6].all()
