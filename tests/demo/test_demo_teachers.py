"""Demo teachers: trained on the synthetic world, saved, and used through ``load_teacher`` like hub ids."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from aloe import bcosify, load_teacher
from aloe.eval.zeroshot import build_siglip_classifier, zeroshot_top1
from aloe.models.demo_teacher_data import HELD_OUT_STREAM, demo_caption_pairs, demo_labelled_images
from aloe.models.demo_teachers import (
    HEAD_FILE, SUMMARY_FILE, _save_atomically, build_demo_teacher, train_classifier_teacher,
)
from aloe.models.demo_tokenizer import EOS_ID, PAD_ID, build_word_tokenizer

SIZE, SHAPES = 32, 4  # 4 shape classes + 6 textures = 10 classes, chance 10 %
ARCH = dict(patch_size=8, hidden_size=32, num_layers=2, num_heads=2, batch_size=32, threads=1)
STEPS = {"vit": 150, "dinov3": 150, "siglip": 200}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny teacher per family, trained once for the module: family -> (dir, summary)."""
    root = tmp_path_factory.mktemp("demo_teachers")
    out = {}
    for family, steps in STEPS.items():
        extra = dict(text_layers=1, lr=2e-3) if family == "siglip" else dict(lr=2e-3)
        summary = build_demo_teacher(family, root / family, seed=0, image_size=SIZE, num_images=600,
                                     num_shape_classes=SHAPES, steps=steps, **ARCH, **extra)
        out[family] = (root / family, summary)
    return out


@pytest.fixture(scope="module")
def held_out():
    images, labels, names = demo_labelled_images(seed=0, stream=HELD_OUT_STREAM, num_images=300, image_size=SIZE,
                                                 num_shape_classes=SHAPES)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(labels), names


def test_tokenizer_pads_left_and_ends_every_text_with_eos(tmp_path):
    tok = build_word_tokenizer(["a photo of a red star", "an image of a {}."], max_length=8)
    ids = tok(["A photo of a red star.", "a red dog"], padding="max_length", max_length=8, truncation=True)["input_ids"]
    vocab = tok.get_vocab()
    words = [vocab[w] for w in ("a", "photo", "of", "a", "red", "star")]
    assert ids[0] == [PAD_ID, *words, EOS_ID]  # lowercased, "." stripped, EOS last: SigLIP pools position -1
    assert ids[1] == [PAD_ID] * 4 + [vocab["a"], vocab["red"], tok.unk_token_id, EOS_ID]
    long = tok(["a photo of a red star " * 3], padding="max_length", max_length=8, truncation=True)["input_ids"][0]
    assert len(long) == 8 and long[-1] == EOS_ID  # truncation keeps EOS in the pooled position
    assert "{" not in vocab and "image" in vocab and "an" in vocab
    tok.save_pretrained(tmp_path)
    again = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert again("a photo of a red star.", padding="max_length", max_length=8)["input_ids"] == ids[0]


def test_save_is_atomic_when_writing_fails(tmp_path):
    def failing(tmp):
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _save_atomically(tmp_path / "teacher", failing)
    assert list(tmp_path.iterdir()) == []  # neither the final dir nor a temp dir is left


def test_bad_inputs_name_the_problem(tmp_path):
    images = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="image_size is 32"):
        train_classifier_teacher("vit", tmp_path / "t", train_images=images, train_labels=[0, 1, 0, 1], image_size=32)
    with pytest.raises(ValueError, match="train_labels"):
        train_classifier_teacher("vit", tmp_path / "t", train_images=images, train_labels=[0, 1], image_size=16)
    with pytest.raises(ValueError, match="unknown demo teacher family"):
        build_demo_teacher("resnet", tmp_path / "t", seed=0, image_size=16, num_images=4, num_shape_classes=4)
    assert not (tmp_path / "t").exists()


def test_training_is_deterministic_for_a_seed(tmp_path):
    images, labels, _ = demo_labelled_images(seed=1, stream=7, num_images=64, image_size=16, num_shape_classes=2)
    kw = dict(train_images=images, train_labels=labels, image_size=16, patch_size=8, hidden_size=16, num_layers=1,
              num_heads=2, steps=5, batch_size=16)
    a = train_classifier_teacher("dinov3", tmp_path / "a", seed=3, **kw)
    b = train_classifier_teacher("dinov3", tmp_path / "b", seed=3, **kw)
    c = train_classifier_teacher("dinov3", tmp_path / "c", seed=4, **kw)
    assert a["final_train_loss"] == b["final_train_loss"] != c["final_train_loss"]
    sa, sb = load_file(tmp_path / "a/model.safetensors"), load_file(tmp_path / "b/model.safetensors")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp dirs left behind


@pytest.mark.parametrize("family", ["vit", "dinov3"])
def test_classifier_teacher_loads_and_beats_chance_on_held_out(trained, held_out, family):
    directory, summary = trained[family]
    assert json.loads((directory / SUMMARY_FILE).read_text()) == summary
    assert summary["steps"] == STEPS[family] and summary["final_train_loss"] < 0.5 * summary["first_train_loss"]
    teacher = load_teacher(directory)
    mean = (0.5,) * 3 if family == "vit" else (0.485, 0.456, 0.406)
    assert (teacher.family, teacher.image_size, teacher.patch_size, teacher.mean) == (family, SIZE, 8, mean)
    assert teacher.num_prefix_tokens == (1 if family == "vit" else 5) and teacher.tokenizer is None
    pre = json.loads((directory / "preprocessor_config.json").read_text())
    assert (tuple(pre["image_mean"]), tuple(pre["image_std"])) == (teacher.mean, teacher.std)
    assert pre["size"] == {"height": SIZE, "width": SIZE}
    assert tuple(transformers.AutoImageProcessor.from_pretrained(directory).image_mean) == mean
    pixels, labels, names = held_out
    head = load_file(directory / HEAD_FILE)
    with torch.no_grad():
        logits = teacher(pixels).pooler_output @ head["weight"].T + head["bias"]
    acc = float((logits.argmax(1) == labels).float().mean())
    # the saved encoder, read back with its own preprocessing, still carries the trained classifier
    assert acc > 0.5, f"{family} held-out accuracy {acc:.2f} (chance {1 / len(names):.2f})"

    student = bcosify(teacher)
    with torch.no_grad():
        out_t, out_s = teacher(pixels[:4], output_hidden_states=True), student(pixels[:4], output_hidden_states=True)
    assert out_s.last_hidden_state.shape == out_t.last_hidden_state.shape == (4, 16 + teacher.num_prefix_tokens, 32)
    assert len(out_s.hidden_states) == len(out_t.hidden_states) == 3 and torch.isfinite(out_s.pooler_output).all()


def test_siglip_teacher_zero_shot_through_load_teacher(trained):
    directory, summary = trained["siglip"]
    teacher = load_teacher(directory)
    assert teacher.family == "siglip" and teacher.num_prefix_tokens == 0 and teacher.mean == (0.5,) * 3
    assert teacher.hf_model.config.text_config.max_position_embeddings >= 64
    tok = teacher.tokenizer
    assert tok is not None and tok.padding_side == "left"
    eos = teacher.hf_model.config.text_config.eos_token_id
    assert tok("a photo of a red circle.")["input_ids"][-1] == EOS_ID == eos
    # every special id of the saved text config lies in its vocabulary (transformers' warning about ids
    # 49406/49407 of a 32,000-token vocabulary is about its own default SiglipTextConfig: aloe.joblog)
    text = teacher.hf_model.config.text_config
    ids = {k: getattr(text, k) for k in ("pad_token_id", "bos_token_id", "eos_token_id")}
    assert ids == {"pad_token_id": PAD_ID, "bos_token_id": EOS_ID, "eos_token_id": EOS_ID}
    assert text.vocab_size == len(tok) and max(ids.values()) < text.vocab_size

    images, _, labels, names = demo_caption_pairs(seed=0, stream=HELD_OUT_STREAM, num_images=300, image_size=SIZE,
                                                  num_shape_classes=SHAPES)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    classifier, scale, bias = build_siglip_classifier(teacher.hf_model, tok, names, ["a photo of a {}."])
    top1, n = zeroshot_top1(teacher, [(pixels, torch.from_numpy(labels))], classifier, scale, bias)
    assert n == 300 and top1 > 35.0, f"zero-shot top-1 {top1:.1f}% (chance {100 / len(names):.1f}%)"
    assert summary["zero_shot_accuracy"] > 0.35 and summary["final_train_loss"] < 0.5 * summary["first_train_loss"]

    student = bcosify(teacher)
    with torch.no_grad():
        out = student(pixels[:4])
    assert out.pooler_output.shape == teacher(pixels[:4]).pooler_output.shape == (4, 32)
