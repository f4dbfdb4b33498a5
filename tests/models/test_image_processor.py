"""BcosImageProcessor: images of any size and kind -> the pixels the evaluation pipeline gives the student."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from aloe import BcosImageProcessor, StudentConfig
from aloe.data.eval_loader import EvalLoader
from aloe.data.shards import write_split, write_meta

SIZE = 32


def _config(family: str) -> StudentConfig:
    return StudentConfig(family=family, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                         image_size=SIZE, patch_size=8, act="gelu", eps=1e-6, use_cls=family != "siglip",
                         num_registers=0, position="learned", pooling="map" if family == "siglip" else "cls")


def _photo(height: int = 45, width: int = 61, seed: int = 0) -> np.ndarray:
    """A smooth uint8 (H, W, 3) image (gradients and a disc), so resampling differences stay small."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    rng = np.random.default_rng(seed)
    disc = ((yy - height * 0.4) ** 2 + (xx - width * 0.6) ** 2 < (min(height, width) * 0.3) ** 2) * 90.0
    channels = [xx / width * 200 + disc, yy / height * 180 + 20, 255 - xx / width * 120 - disc * 0.5]
    noise = rng.normal(0, 2, (height, width, 3))
    return np.clip(np.stack(channels, -1) + noise, 0, 255).round().astype(np.uint8)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("family,view", [("vit", "center_crop"), ("dinov3", "center_crop"), ("siglip", "resize")])
def test_the_family_gets_the_pipelines_view(family, view):
    p = BcosImageProcessor.for_student(_config(family))
    assert (p.transform, p.size, p.patch_size) == (view, SIZE, 8)
    assert p.interpolation == ("bicubic" if view == "resize" else "bilinear") and p.do_normalize is False
    assert BcosImageProcessor.for_student(_config(family), transform="resize_center_crop").transform == \
        "resize_center_crop"


@pytest.mark.parametrize("view", ["center_crop", "resize", "resize_center_crop"])
def test_pil_path_and_uint8_tensor_give_the_eval_loaders_pixels(view, tmp_path):
    array = _photo()
    (tmp_path / "img.png").write_bytes(_png(array))
    # the reference: the evaluation loader itself, on a one-image dataset
    root = tmp_path / "data"
    split = write_split(root, "test", [{"png": _png(array), "cls": b"0"}])
    write_meta(root, name="one", task="classification", splits={"test": split}, class_names=["x"])
    (expected,) = [b.pixels for b in EvalLoader(root, "test", image_size=SIZE, batch_size=1, transform=view)]
    p = BcosImageProcessor(size=SIZE, transform=view, patch_size=8)
    chw = torch.from_numpy(array).permute(2, 0, 1)
    for image in (Image.fromarray(array), tmp_path / "img.png", str(tmp_path / "img.png"), chw, array):
        out = p(image)["pixel_values"]
        assert out.shape == (1, 3, SIZE, SIZE) and out.dtype == torch.float32
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    batch = p([Image.fromarray(array), chw[None].expand(2, -1, -1, -1)])["pixel_values"]
    assert batch.shape == (3, 3, SIZE, SIZE) and torch.equal(batch, expected.expand(3, -1, -1, -1))


def test_views_have_the_geometry_they_record():
    """Against PIL, independently of the loader: the centred square resized bilinear, or the whole
    image squashed bicubic, to within two grey levels (antialiased resampling kernels differ slightly)."""
    array = _photo(45, 61)
    img = Image.fromarray(array)
    crop = img.crop((8, 0, 53, 45)).resize((SIZE, SIZE), Image.BILINEAR)
    squash = img.resize((SIZE, SIZE), Image.BICUBIC)
    for view, ref in (("center_crop", crop), ("resize", squash)):
        out = BcosImageProcessor(size=SIZE, transform=view)(img)["pixel_values"][0]
        want = torch.from_numpy(np.array(ref)).permute(2, 0, 1).float() / 255
        assert (out - want).abs().max() <= 2.5 / 255, view
    off = img.crop((0, 0, 45, 45)).resize((SIZE, SIZE), Image.BILINEAR)  # a left-aligned crop is another image
    out = BcosImageProcessor(size=SIZE, transform="center_crop")(img)["pixel_values"][0]
    assert (out - torch.from_numpy(np.array(off)).permute(2, 0, 1).float() / 255).abs().max() > 10 / 255


def test_float_grey_and_rgba_inputs():
    array = _photo()
    p = BcosImageProcessor(size=SIZE, transform="center_crop")
    via_uint8 = p(array)["pixel_values"]
    as_float = torch.from_numpy(array).permute(2, 0, 1).double() / 255
    out = p(as_float)["pixel_values"]
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    assert (out - via_uint8).abs().max() <= 1 / 255  # resized in float, not rounded first
    grey = p(array[..., 0])["pixel_values"]
    assert torch.equal(grey[0, 0], grey[0, 1]) and torch.equal(grey[0, 0], grey[0, 2])
    rgba = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], -1)
    torch.testing.assert_close(p(Image.fromarray(rgba, "RGBA"))["pixel_values"], via_uint8, rtol=0, atol=0)
    assert p(array, size=48, dtype=torch.float64)["pixel_values"].shape == (1, 3, 48, 48)


def test_bad_images_and_settings_are_refused(tmp_path):
    p = BcosImageProcessor(size=SIZE, transform="resize", patch_size=8)
    with pytest.raises(ValueError, match=r"float pixels must lie in \[0, 1\], got \[.*255\].*as uint8"):
        p(torch.rand(3, 20, 30) * 255)
    with pytest.raises(TypeError, match="torch.int64 pixels"):
        p(torch.ones(3, 20, 30, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"1 or 3 channels.*\(5, 20, 30\)"):
        p(torch.rand(5, 20, 30))
    with pytest.raises(FileNotFoundError, match="no image file"):
        p(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png is not an image"):
        p(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="size 30 is not a multiple of the student's patch size 8"):
        p(_photo(), size=30)
    with pytest.raises(ValueError, match="transform must be one of"):
        BcosImageProcessor(transform="squash")
    with pytest.raises(ValueError, match="unknown settings \\['image_mean'\\]"):
        BcosImageProcessor(image_mean=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="no images"):
        p([])


def test_saved_config_loads_with_auto_image_processor(tmp_path):
    p = BcosImageProcessor.for_student(_config("siglip"), size=48)
    p.save_pretrained(tmp_path)
    q = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(q) is BcosImageProcessor and q.to_dict() == p.to_dict()
    assert (q.size, q.transform, q.interpolation, q.crop) == (48, "resize", "bicubic",
                                                              "none (whole image, aspect ratio not kept)")
    text = (tmp_path / "preprocessor_config.json").read_text()
    (tmp_path / "preprocessor_config.json").write_text(text.replace('"bicubic"', '"bilinear"'))
    with pytest.raises(ValueError, match="interpolation 'bilinear' does not go with transform 'resize'"):
        AutoImageProcessor.from_pretrained(tmp_path)
