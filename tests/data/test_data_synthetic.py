"""The embedded synthetic world: bit-identical per seed, exact geometry, servable over loopback."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from aloe.data.loopback import LoopbackServer
from aloe.data.shards import read_meta
from aloe.data.synthetic_depth import MAX_DEPTH, render_scene
from aloe.data.synthetic_images import COLOURS, TEXTURES, shape_classes, shape_image
from aloe.data.synthetic_world import make_synthetic_world, write_url_list

SMALL = dict(image_size=24, num_classes=4, caption_images=6, train_per_class=2, test_per_class=1,
             digits_train=12, digits_test=6, depth_train=3, depth_test=2, broken_per_kind=1,
             samples_per_shard=5)


def tree_digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_world_is_bit_identical_for_a_seed(tmp_path):
    a = make_synthetic_world(tmp_path / "a", seed=3, **SMALL)
    b = make_synthetic_world(tmp_path / "b", seed=3, **SMALL)
    make_synthetic_world(tmp_path / "c", seed=4, **SMALL)
    assert a == b
    da, db, dc = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b"), tree_digest(tmp_path / "c")
    assert da == db
    assert len(da) > 20 and not any(name.startswith(".") for name in da)  # no temp leftovers
    assert set(da) == set(dc)
    changed = [n for n in da if da[n] != dc[n]]
    assert "shapes/train/000000.tar" in changed and "depth/test/000000.tar" in changed
    # digits come from scikit-learn: the split changes with the seed, the data does not


def test_world_contents(tiny_world):
    world = json.loads((tiny_world / "world.json").read_text())
    assert world["caption_set"]["counts"] == {"ok": 40, "missing": 1, "not_image": 1, "empty": 1}
    shapes, textures, digits, depth = (read_meta(tiny_world / n) for n in ("shapes", "textures", "digits", "depth"))
    assert shapes["class_names"] == ["red circle", "green square", "blue triangle", "yellow star"]
    assert shapes["splits"]["train"]["num_samples"] == 40 and shapes["splits"]["test"]["num_samples"] == 20
    assert len(textures["class_names"]) == 6 and textures["splits"]["test"]["num_samples"] == 30
    assert digits["class_names"][3] == "three"
    assert (digits["splits"]["train"]["num_samples"], digits["splits"]["test"]["num_samples"]) == (100, 50)
    assert depth["task"] == "dense" and depth["splits"]["train"]["num_samples"] == 16
    manifest = pd.read_parquet(tiny_world / "caption_set/manifest.parquet")
    ok = manifest[manifest["kind"] == "ok"]
    kinds = {"shape": "|".join(f"{c} {s}" for c, s in shape_classes(4)), "texture": "|".join(TEXTURES),
             "digit": "handwritten", "scene": "sphere on a floor"}
    counts = {k: int(ok["caption"].str.contains(pattern).sum()) for k, pattern in kinds.items()}
    assert sum(counts.values()) == 40 and min(counts.values()) >= 5, counts  # every kind the world evaluates on


def test_caption_digits_come_from_the_training_split_only(monkeypatch):
    import aloe.data.synthetic_world as world

    real = world._digits_split(0)
    assert len(real["train"][1]) + len(real["test"][1]) == 1797 and len(real["test"][1]) == 1797 // 4
    full, empty = np.full((3, 8, 8), 16.0), np.zeros((3, 8, 8))  # train: all-white digits, test: black
    monkeypatch.setattr(world, "_digits_split", lambda seed: {"train": (full, np.array([1, 2, 3])),
                                                              "test": (empty, np.array([4, 5, 6]))})
    draws = [world.caption_sample(0, 1, i, shape_classes(4), 32, 1.4) for i in range(200)]
    digits = [(img, cap) for img, cap in draws if "handwritten" in cap]
    assert len(digits) > 20
    assert all(img.shape == (32, 32, 3) and img.max() == 255 for img, _ in digits)  # never a test image
    assert {cap.split("handwritten ")[1].split()[0] for _, cap in digits} <= {"one", "two", "three"}


def test_shape_images_show_their_class_colour():
    for i, (colour, shape) in enumerate(shape_classes(8)):
        img = shape_image(0, 99, i, colour, shape, 48, 48).astype(float)
        close = np.linalg.norm(img - np.array(COLOURS[colour]), axis=-1) < 40
        assert 0.05 < close.mean() < 0.6, (colour, shape, close.mean())


def test_depth_scene_geometry_is_exact():
    size = 48
    rgb, depth, normal = render_scene(5, 1, 2, size)
    assert rgb.dtype == np.uint8 and depth.dtype == np.float32 and normal.shape == (size, size, 3)
    assert (depth > 0).all() and depth.max() <= MAX_DEPTH
    assert np.allclose(np.linalg.norm(normal, axis=-1), 1.0, atol=1e-5)
    focal = 0.5 / np.tan(np.radians(60) / 2)
    coords = (np.arange(size) + 0.5) / size - 0.5
    v, u = np.meshgrid(coords / focal, coords / focal, indexing="ij")
    points = np.stack([u, v, np.ones_like(u)], -1) * depth[..., None].astype(np.float64)
    floor = np.all(normal == [0, -1, 0], axis=-1)
    wall = np.all(normal == [0, 0, -1], axis=-1)
    spheres = ~(floor | wall)
    assert floor.sum() > 50 and wall.sum() > 50 and spheres.sum() > 20
    assert np.ptp(points[floor][:, 1]) < 1e-5  # floor points share one height
    assert np.ptp(depth[wall]) == 0  # wall is a fronto-parallel plane
    assert (normal[spheres] @ np.array([0, 0, 1.0]) < 0).all()  # visible sphere faces the camera


def test_loopback_serves_files_and_404(tiny_world, tmp_path):
    with LoopbackServer(tiny_world / "caption_set") as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        body = urllib.request.urlopen(server.url("images/000000.png"), timeout=5).read()
        assert body == (tiny_world / "caption_set/images/000000.png").read_bytes()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(server.url("missing/0.jpg"), timeout=5)
        urls = pd.read_parquet(write_url_list(tiny_world, server.base_url, tmp_path / "u.parquet"))
    assert list(urls.columns) == ["url", "caption"] and len(urls) == 43
    assert urls["url"].str.startswith("http://127.0.0.1:").all()
