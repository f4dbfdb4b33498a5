"""Alignment and evaluation loaders: exactly-once splitting, determinism, resume, damage counts."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from aloe.data.align_loader import AlignmentLoader
from aloe.data.augment import center_crop_resize, crop_params, decode_image, random_resized_crop, resize_whole
from aloe.data.eval_loader import EvalLoader, eval_transform
from aloe.data.synthetic_depth import render_scene
from aloe.data.synthetic_world import SYNTHETIC_PRESETS, make_synthetic_world

SIZES = [5, 9, 7, 11, 6, 8, 4]  # 50 samples in 7 shards of different sizes


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory, make_shard_set):
    return make_shard_set(tmp_path_factory.mktemp("shards"), SIZES)


def run(loader, epoch=0, resume=None, limit=None):
    keys, pixels = [], []
    for i, batch in enumerate(loader.iterate(epoch, resume_state=resume)):
        keys += batch.keys
        pixels.append(batch.pixels)
        if limit is not None and i + 1 == limit:
            break  # stop without fetching another batch: the state is "after `limit` batches"
    return keys, (torch.cat(pixels) if pixels else torch.empty(0))


def make(shards, **kw):
    opts = dict(image_size=16, batch_size=4, seed=11, shuffle_buffer=8)
    return AlignmentLoader(shards, **{**opts, **kw})


def test_each_sample_exactly_once_across_2_ranks_x_2_workers(shard_set):
    shards, all_keys = shard_set
    seen = []
    for rank in range(2):
        loader = make(shards, rank=rank, world_size=2, num_workers=2)
        keys, pixels = run(loader)
        assert pixels.shape == (len(keys), 3, 16, 16) and pixels.dtype == torch.float32
        assert 0.0 <= pixels.min() and pixels.max() <= 1.0
        assert loader.skipped.total == 0
        seen += keys
    assert sorted(seen) == sorted(all_keys)  # no duplicates, no gaps
    assert len(seen) == len(set(seen)) == 50


def test_keys_file_restricts_the_stream(shard_set, tmp_path):
    shards, all_keys = shard_set
    chosen = sorted(all_keys[::3])
    (tmp_path / "keys.txt").write_text("".join(f"{k}\n" for k in chosen))
    seen = []
    for rank in range(2):
        seen += run(make(shards, rank=rank, world_size=2, num_workers=2, keys_file=tmp_path / "keys.txt"))[0]
    assert sorted(seen) == chosen


def test_order_and_augmentation_are_deterministic_and_resumable(shard_set):
    shards, all_keys = shard_set
    keys_a, pix_a = run(make(shards, num_workers=2))
    keys_b, pix_b = run(make(shards, num_workers=2))
    assert keys_a == keys_b and torch.equal(pix_a, pix_b)
    assert sorted(keys_a) == sorted(all_keys) and keys_a != sorted(keys_a)
    keys_dir, _ = run(make(str(Path(shards[0]).parent), num_workers=2))  # a folder of shards
    assert keys_dir == keys_a
    keys_e1, _ = run(make(shards, num_workers=2), epoch=1)
    assert keys_e1 != keys_a and sorted(keys_e1) == sorted(all_keys)

    # The same batches, sample for sample and bit for bit, whatever the number of workers.
    for workers in (0, 1, 3, 12):
        keys_w, pix_w = run(make(shards, num_workers=workers))
        assert keys_w == keys_a and torch.equal(pix_w, pix_a), workers
    batches = [b.keys for b in make(shards, num_workers=0).iterate(0)]
    assert [b.keys for b in make(shards, num_workers=3).iterate(0)] == batches

    # Interrupt after 5 batches, resume from the saved state: identical remainder, with the
    # same or another number of workers.
    loader = make(shards, num_workers=2)
    head_keys, head_pix = run(loader, limit=5)
    state = loader.state_dict()
    for workers in (2, 0, 3):
        tail_keys, tail_pix = run(make(shards, num_workers=workers), resume=state)
        assert head_keys + tail_keys == keys_a
        assert torch.equal(torch.cat([head_pix, tail_pix]), pix_a)
    # 7 shards of 5, 9, 7, 11, 6, 8, 4 in 7 streams: 10 full batches, then the streams' leftovers
    # (1 + 1 + 3 + 3 + 2 samples) as 4 + 4 + 2; interrupted anywhere, the rest is the same.
    assert [len(b.keys) for b in make(shards).iterate(0)] == [4] * 12 + [2]
    for stop in range(1, 14):
        loader = make(shards)
        head_keys, _ = run(loader, limit=stop)
        tail_keys, _ = run(make(shards, num_workers=stop % 3), resume=loader.state_dict())
        assert head_keys + tail_keys == keys_a, stop
    # Resumed once more from the end of that epoch: nothing left.
    loader = make(shards, num_workers=2)
    run(loader)
    assert run(make(shards), resume=loader.state_dict())[0] == []

    with pytest.raises(ValueError, match="streams"):
        run(make(shards, streams=3), resume=state)
    with pytest.raises(ValueError, match="every rank needs at least one shard"):
        make(shards[:1], rank=0, world_size=2)


def test_damaged_shards_are_skipped_and_counted(shard_set, tmp_path):
    shards, _ = shard_set
    work = [shutil.copy(s, tmp_path) for s in shards]
    for s in shards:
        shutil.copy(Path(s).with_suffix(".parquet"), tmp_path)
    # Shard 3 (11 samples) truncated in the middle of its data.
    data = open(work[3], "rb").read()
    cut = len(data) // 2
    open(work[3], "wb").write(data[:cut])
    with tarfile.open(shards[3]) as tar:
        members = tar.getmembers()
    complete = {m.name.split(".")[0] for m in members if m.name.endswith(".png") and m.offset_data + m.size <= cut}
    complete &= {m.name.split(".")[0] for m in members if m.name.endswith(".cls") and m.offset_data + m.size <= cut}
    # An extra shard (no index) with a corrupt image and a sample without any image.
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        for name, payload in [("x_1.png", b"\x89PNG not really"), ("x_1.cls", b"0"), ("x_2.cls", b"1")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    work.append(str(bad))

    loader = make(work, num_workers=2)
    keys, _ = run(loader)
    run(loader, epoch=1)  # met again in the next epoch: still counted once
    intact = sum(SIZES) - SIZES[3]
    assert len(keys) == intact + len(complete) and 0 < len(complete) < SIZES[3]
    skipped = loader.skipped.as_dict()
    counts = skipped["by_shard"]
    assert counts[bad.name] == {"corrupt_image": 1, "missing_image": 1}
    assert sum(counts["000003.tar"].values()) == SIZES[3] - len(complete)  # every lost sample, by key
    assert set(counts) == {bad.name, "000003.tar"}
    assert skipped["total"] == SIZES[3] - len(complete) + 2 and skipped["samples"] == sum(SIZES) + 2
    assert skipped["shard_notes"] == {"000003.tar": ["truncated_tar"], "bad.tar": ["no_index"]}


def test_augmentation_matches_plain_resize_at_full_scale():
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 30, 30), dtype=np.uint8))
    out = random_resized_crop(img, 12, seed=3, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=False)
    plain = torch.nn.functional.interpolate(img[None].float(), size=(12, 12), mode="bilinear", antialias=True)[0]
    assert out.shape == (12, 12, 3)
    assert (out.permute(2, 0, 1).float() - plain.round()).abs().max() <= 1  # uint8 kernel rounds internally
    views = [random_resized_crop(img, 12, seed=s, scale=(1.0, 1.0), ratio=(1.0, 1.0)) for s in range(20)]
    assert any(torch.equal(v, out.flip(1)) for v in views) and any(torch.equal(v, out) for v in views)
    # torchvision's algorithm: crops respect the scale and ratio bounds
    for s in range(200):
        top, left, h, w, _ = crop_params(100, 80, s, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top <= 100 - h and 0 <= left <= 80 - w
        assert 0.08 * 8000 * 0.9 <= h * w <= 8000 and 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1


def test_eval_loader_is_ordered_and_exact(tiny_world):
    loader = EvalLoader(tiny_world / "shapes", "test", image_size=24, batch_size=7)
    batches = list(loader)
    keys = [k for b in batches for k in b.keys]
    assert keys == [f"test_{i:08d}" for i in range(20)]  # 4 classes x 5, file order
    labels = torch.cat([b.labels for b in batches])
    assert labels.tolist() == [i % 4 for i in range(20)]
    assert loader.class_names == ["red circle", "green square", "blue triangle", "yellow star"]
    # pixels = centre square resized, /255
    import webdataset as wds
    first = next(iter(wds.WebDataset(str(tiny_world / "shapes/test/000000.tar"), shardshuffle=False)))
    expected = center_crop_resize(decode_image(first["png"]), 24)
    assert torch.equal(batches[0].pixels[0], expected.permute(2, 0, 1).float() / 255)
    assert batches[0].pixels.is_contiguous()


def test_siglip_view_resizes_the_whole_image():
    # 20 x 60 grey image with white 6 x 12 markers in two corners (outside the centre square)
    img = torch.full((3, 20, 60), 100, dtype=torch.uint8)
    img[:, :6, :12] = 255
    img[:, -6:, -12:] = 255
    out = resize_whole(img, 10)
    assert out.shape == (10, 10, 3) and out.dtype == torch.uint8
    # the markers survive at the output corners (squashed 3x horizontally), the rest stays grey
    assert out[0, 0].min() > 200 and out[-1, -1].min() > 200 and out[0, -1].max() < 130 and out[-1, 0].max() < 130
    assert (out[4:6, 4:6].int() - 100).abs().max() <= 1
    crop = center_crop_resize(img, 10)
    assert crop.max() <= 101  # the centred square has no marker: that view crops them away
    # antialiased bicubic, as PIL's BICUBIC (OpenCLIP's SigLIP preprocessing), to one grey level
    rng = np.random.default_rng(1)
    rand = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    from PIL import Image
    ref = np.asarray(Image.fromarray(rand).resize((16, 16), Image.BICUBIC)).astype(int)
    got = resize_whole(torch.from_numpy(rand).permute(2, 0, 1), 16).numpy().astype(int)
    assert np.abs(got - ref).max() <= 1
    assert eval_transform("siglip", "classification") == "resize"
    assert eval_transform("siglip", "dense") == eval_transform("vit", "classification") == "center_crop"


def test_dinov2_view_is_resize_256_bicubic_then_centre_crop_224():
    from PIL import Image

    from aloe.data.augment import resize_short_center_crop
    rng = np.random.default_rng(2)
    for h, w in ((300, 400), (410, 250)):
        rand = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        # torchvision's Resize(256) (short side, long side int(256 * long / short)) + CenterCrop(224), on PIL
        new = (int(256 * w / h), 256) if h <= w else (256, int(256 * h / w))
        big = Image.fromarray(rand).resize(new, Image.BICUBIC)
        left, top = int(round((new[0] - 224) / 2.0)), int(round((new[1] - 224) / 2.0))
        ref = np.asarray(big.crop((left, top, left + 224, top + 224))).astype(int)
        got = resize_short_center_crop(torch.from_numpy(rand).permute(2, 0, 1), 224).numpy().astype(int)
        assert got.shape == (224, 224, 3) and np.abs(got - ref).max() <= 1
        # not the largest centred square: that view keeps more of the image
        square = center_crop_resize(torch.from_numpy(rand).permute(2, 0, 1), 224).numpy().astype(int)
        assert np.abs(square - ref).mean() > 10
    # config key evaluation.transform: auto is per family; a named view is every backbone's; dense keeps the square
    assert eval_transform("vit", "classification", "resize_center_crop") == "resize_center_crop"
    assert eval_transform("siglip", "classification", "center_crop") == "center_crop"
    assert eval_transform("siglip", "classification", "auto") == "resize"
    assert eval_transform("vit", "dense", "resize_center_crop") == "center_crop"
    with pytest.raises(ValueError, match="evaluation.transform"):
        eval_transform("vit", "classification", "bicubic")


def test_eval_loader_resize_view(tiny_world):
    import webdataset as wds
    first = next(iter(wds.WebDataset(str(tiny_world / "shapes/test/000000.tar"), shardshuffle=False)))
    batch = next(iter(EvalLoader(tiny_world / "shapes", "test", image_size=24, batch_size=7, transform="resize")))
    expected = resize_whole(decode_image(first["png"]), 24)
    assert torch.equal(batch.pixels[0], expected.permute(2, 0, 1).float() / 255)
    with pytest.raises(ValueError, match="classification"):
        EvalLoader(tiny_world / "depth", "test", image_size=24, batch_size=7, transform="resize")
    with pytest.raises(ValueError, match="one of"):
        EvalLoader(tiny_world / "shapes", "test", image_size=24, batch_size=7, transform="crop")


def test_eval_batches_do_not_depend_on_the_number_of_workers(tmp_path):
    # 40 train images in 6 shards
    make_synthetic_world(tmp_path, **{**SYNTHETIC_PRESETS["tiny"], "seed": 7, "samples_per_shard": 7})

    def batches_of(workers):
        loader = EvalLoader(tmp_path / "shapes", "train", image_size=24, batch_size=3, num_workers=workers,
                            streams=4)
        return [(b.keys, b.pixels) for b in loader]

    one = batches_of(0)
    assert sorted(k for keys, _ in one for k in keys) == [f"train_{i:08d}" for i in range(40)]
    assert [k for keys, _ in one for k in keys] != sorted(k for keys, _ in one for k in keys)  # 4 streams interleave
    for workers in (1, 2, 3):  # the same batches, in the same order
        other = batches_of(workers)
        assert [k for k, _ in other] == [k for k, _ in one]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(other, one))


def test_dense_loader_returns_exact_targets(tiny_world):
    batch = next(iter(EvalLoader(tiny_world / "depth", "test", image_size=32, batch_size=8)))
    assert batch.pixels.shape == (8, 3, 32, 32) and batch.normal.shape == (8, 3, 32, 32)
    rgb, depth, normal = render_scene(7, 7, 0, 32)  # seed 7, stream DEPTH_TEST, index 0
    assert torch.equal(batch.depth[0], torch.from_numpy(depth))
    assert torch.equal(batch.normal[0], torch.from_numpy(normal).permute(2, 0, 1))
    assert torch.equal(batch.pixels[0], torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
