"""The paper's hub teachers at their published architectures, checked offline.

Each teacher is built with random weights from its published configuration
(``aloe.models.hub_teachers``), saved into a temporary Hugging Face cache under its real hub id,
loaded back with ``load_teacher(hub_id, cache_dir=...)`` and converted: B = 1 equality with zeroed
biases and B = 2 completeness, in float64. The base-size teachers run at published size and image
size (about a minute on 2 cores); all eight also run as "tiny" variants (real depth and patch, width
32). The larger ones are checked by ``benchmarks/real_teachers.py``.
"""

import hashlib
import json
from pathlib import Path

import huggingface_hub
import pytest
import torch

from aloe import load_teacher
from aloe.config import load_config
from aloe.models.conversion_check import b1_error, completeness_error, perturb_scales_, zero_biases_
from aloe.models.demo_tokenizer import build_word_tokenizer
from aloe.models.hub_teachers import (HUB_TEACHERS, TINY_WIDTH, build_teacher_model, preprocessor_config,
                                      save_to_hub_cache, teacher_config, vision_tower)
from aloe.registry import BACKBONES

BASE_SIZE = ["google/vit-base-patch16-224", "google/siglip2-base-patch16-224",
             "facebook/dinov3-vits16-pretrain-lvd1689m", "facebook/dinov3-vitb16-pretrain-lvd1689m"]
PREFIX_TOKENS = {"vit": 1, "dinov3": 5, "siglip": 0}  # [CLS]; [CLS] + 4 registers; none (MAP head)
# encoder parameters without the MAP head / pooler, in millions: ViT paper Table 1 (ViT-B 86M),
# SigLIP 2 paper (B 86M, L 303M, So400m 400M), DINOv3 model card (S 21M, B 86M, L 300M)
ENCODER_PARAMS_M = {"google/vit-base-patch16-224": 86, "google/siglip2-base-patch16-224": 86,
                    "google/siglip2-large-patch16-256": 303, "google/siglip2-so400m-patch16-256": 400,
                    "google/siglip2-so400m-patch16-384": 400, "facebook/dinov3-vits16-pretrain-lvd1689m": 21,
                    "facebook/dinov3-vitb16-pretrain-lvd1689m": 86, "facebook/dinov3-vitl16-pretrain-lvd1689m": 300}
TOL = 1e-10  # float64; measured about 2e-14 (B = 1) and 1e-15 (completeness)
CAPTIONS = ["a photo of a cat", "a photo of a dog"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _pixels(size: int) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _save_and_load(model, hub_id, cache, tokenizer=None):
    """Zero the vision biases and perturb its scales, save under ``hub_id``, load it back; checks the
    loaded vision weights are the saved ones (the conversion checks alone would pass on any weights)."""
    vision = vision_tower(model)
    assert zero_biases_(vision) > 0 and perturb_scales_(vision) > 0
    save_to_hub_cache(model, hub_id, cache, tokenizer=tokenizer)
    teacher = load_teacher(hub_id, cache_dir=cache)
    loaded = teacher.vision.state_dict()
    for key, value in vision.state_dict().items():
        assert torch.equal(loaded[key], value), key
    return teacher


def _check_config(teacher, hub_id, replaced=None):
    spec, replaced = HUB_TEACHERS[hub_id], replaced or {}
    assert teacher.family == spec.family and type(teacher.hf_model).__name__ == spec.hf_class
    assert teacher.hf_model.config.architectures == [spec.architecture]
    for key, value in spec.vision_config.items():
        assert getattr(teacher.vision_config, key) == replaced.get(key, value), key
    assert teacher.patch_size == 16 and teacher.num_layers == spec.vision_config["num_hidden_layers"]
    assert teacher.num_registers == (4 if spec.family == "dinov3" else 0)
    assert teacher.num_prefix_tokens == PREFIX_TOKENS[spec.family]
    published = spec.preprocessing
    assert (teacher.mean, teacher.std) == (tuple(published["image_mean"]), tuple(published["image_std"]))
    if spec.family == "dinov3":  # the RoPE / bias flags the student relies on, spelled out
        vc = teacher.vision_config
        flags = (vc.rope_theta, vc.key_bias, vc.query_bias, vc.value_bias, vc.use_gated_mlp, vc.layerscale_value)
        assert flags == (100.0, False, True, True, False, 1.0)


def _check_text_tower(teacher, tokenizer, width):
    ids = teacher.tokenizer(CAPTIONS, padding="max_length", max_length=64, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, tokenizer(CAPTIONS, padding="max_length", max_length=64, return_tensors="pt")["input_ids"])
    assert teacher.hf_model.get_text_features(input_ids=ids).pooler_output.shape == (2, width)


@pytest.mark.parametrize("hub_id", BASE_SIZE)
def test_published_base_teacher_loads_offline_and_converts(hub_id, tmp_path):
    spec = HUB_TEACHERS[hub_id]
    tokenizer = build_word_tokenizer(CAPTIONS) if spec.family == "siglip" else None
    teacher = _save_and_load(build_teacher_model(hub_id), hub_id, tmp_path / "hub", tokenizer)
    _check_config(teacher, hub_id)
    if spec.family == "siglip":  # the whole published text tower, 256k vocabulary included
        for key, value in spec.config["text_config"].items():
            assert getattr(teacher.hf_model.config.text_config, key) == value, key
        _check_text_tower(teacher, tokenizer, spec.vision_config["hidden_size"])
    teacher.vision.double()
    x = _pixels(spec.vision_config["image_size"])
    assert b1_error(teacher, x) <= TOL
    assert completeness_error(teacher, x) <= TOL


@pytest.mark.parametrize("hub_id", sorted(HUB_TEACHERS))
def test_tiny_variant_loads_offline_and_converts(hub_id, tmp_path):
    siglip = HUB_TEACHERS[hub_id].family == "siglip"
    tokenizer = build_word_tokenizer(CAPTIONS) if siglip else None
    extra = {"text_config": {"vocab_size": len(tokenizer)}} if siglip else {}
    teacher = _save_and_load(build_teacher_model(hub_id, size="tiny", **extra), hub_id, tmp_path, tokenizer)
    _check_config(teacher, hub_id, replaced=TINY_WIDTH)
    if siglip:
        assert teacher.hf_model.config.text_config.vocab_size == len(tokenizer)
        _check_text_tower(teacher, tokenizer, TINY_WIDTH["hidden_size"])
    teacher.double()
    x = _pixels(TINY_WIDTH["image_size"])
    assert b1_error(teacher, x) <= TOL
    assert completeness_error(teacher, x) <= TOL


def test_hub_teachers_are_the_paper_teachers():
    paper = load_config(Path(__file__).parents[2] / "config.yaml")["paper"]["teachers"]  # registry values filled in
    assert {t["source"] for t in paper.values()} == set(HUB_TEACHERS)
    for t in paper.values():
        spec = HUB_TEACHERS[t["source"]]
        assert (spec.family, spec.vision_config["num_hidden_layers"]) == (t["family"], t["depth"]), t["source"]
    # every hub entry of the registry names a published checkpoint with its family and depth
    for entry in (e for e in BACKBONES.values() if e.hub_id):
        spec = HUB_TEACHERS[entry.hub_id]
        assert (spec.family, spec.vision_config["num_hidden_layers"]) == (entry.family, entry.depth), entry.hub_id


@pytest.mark.parametrize("hub_id", sorted(HUB_TEACHERS))
def test_published_sizes_match_the_papers_parameter_counts(hub_id):
    with torch.device("meta"):  # shapes only, no memory
        vision = vision_tower(build_teacher_model(hub_id))
    n = sum(p.numel() for name, p in vision.named_parameters() if not name.startswith(("head.", "pooler.")))
    assert n / 1e6 == pytest.approx(ENCODER_PARAMS_M[hub_id], rel=0.04)


def test_missing_hub_id_says_how_to_get_it(tmp_path):
    hub_id, cache = "facebook/dinov3-vitl16-pretrain-lvd1689m", tmp_path / "hub"
    with pytest.raises(FileNotFoundError) as info:
        load_teacher(hub_id, cache_dir=cache)
    message = str(info.value)
    for part in (f"cannot load teacher '{hub_id}'", str(cache), f"huggingface-cli download {hub_id}",
                 f"hf download {hub_id}", "HF_HOME", "HF_TOKEN", "gated", "HF_HUB_OFFLINE=1"):
        assert part in message, part
    # config cached but not the weights (a gated download that stopped after config.json)
    snapshot = save_to_hub_cache(build_teacher_model(hub_id, size="tiny"), hub_id, cache)
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=f"cannot load teacher '{hub_id}'.*{cache}"):
        load_teacher(hub_id, cache_dir=cache)


def test_save_to_hub_cache_writes_the_hub_layout(tmp_path):
    hub_id = "facebook/dinov3-vits16-pretrain-lvd1689m"
    model = build_teacher_model(hub_id, size="tiny")
    snapshot = save_to_hub_cache(model, hub_id, tmp_path)
    repo = tmp_path / "models--facebook--dinov3-vits16-pretrain-lvd1689m"
    assert snapshot.parent == repo / "snapshots" and (repo / "refs" / "main").read_text() == snapshot.name
    assert len(snapshot.name) == 40 and int(snapshot.name, 16) >= 0
    names = sorted(p.name for p in snapshot.iterdir())
    assert names == ["config.json", "model.safetensors", "preprocessor_config.json"]
    for name in names:
        link = snapshot / name
        assert link.is_symlink() and link.resolve().parent == (repo / "blobs").resolve()
    weights, config = (snapshot / "model.safetensors").read_bytes(), (snapshot / "config.json").read_bytes()
    assert (snapshot / "model.safetensors").resolve().name == hashlib.sha256(weights).hexdigest()
    assert (snapshot / "config.json").resolve().name == hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()
    scanned = huggingface_hub.scan_cache_dir(tmp_path)
    assert [(r.repo_id, [v.commit_hash for v in r.revisions]) for r in scanned.repos] == [(hub_id, [snapshot.name])]
    found = huggingface_hub.try_to_load_from_cache(hub_id, "config.json", cache_dir=tmp_path)
    assert found == str(snapshot / "config.json")
    assert json.loads((snapshot / "preprocessor_config.json").read_text()) == preprocessor_config(hub_id, 32)
    assert preprocessor_config(hub_id, 32)["size"] == {"height": 32, "width": 32}
    # the same files give the same commit; an explicit one is used as given
    assert save_to_hub_cache(model, hub_id, tmp_path) == snapshot
    other = save_to_hub_cache(model, hub_id, tmp_path, revision_hash="ab" * 20)
    assert other.name == "ab" * 20 and (repo / "refs" / "main").read_text() == "ab" * 20
    with pytest.raises(ValueError, match="40 lowercase hex"):
        save_to_hub_cache(model, hub_id, tmp_path, revision_hash="main")


def test_builder_and_saver_reject_what_does_not_fit(tmp_path):
    with pytest.raises(KeyError, match="not a known hub teacher"):
        build_teacher_model("google/vit-huge-patch14-224")
    with pytest.raises(ValueError, match=r"unknown vision config keys \['hiden_size'\]"):
        teacher_config("google/vit-base-patch16-224", hiden_size=64)
    with pytest.raises(ValueError, match="no text tower"):
        teacher_config("facebook/dinov3-vits16-pretrain-lvd1689m", text_config={"vocab_size": 8})
    with pytest.raises(ValueError, match="size must be one of"):
        teacher_config("facebook/dinov3-vits16-pretrain-lvd1689m", size="huge")
    deeper = teacher_config("google/siglip2-base-patch16-224", "tiny", num_hidden_layers=3)
    assert deeper.vision_config.num_hidden_layers == 3 and deeper.vision_config.hidden_size == 32
    tokenizer = build_word_tokenizer(CAPTIONS)
    small = build_teacher_model("google/siglip2-base-patch16-224", size="tiny", text_config={"vocab_size": 4})
    with pytest.raises(ValueError, match=r"tokenizer has \d+ tokens, the text tower only 4"):
        save_to_hub_cache(small, "google/siglip2-base-patch16-224", tmp_path, tokenizer=tokenizer)
    dino = build_teacher_model("facebook/dinov3-vits16-pretrain-lvd1689m", size="tiny")
    with pytest.raises(ValueError, match="no text tower"):
        save_to_hub_cache(dino, "facebook/dinov3-vits16-pretrain-lvd1689m", tmp_path, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="is a 'vit' model, got a 'dinov3_vit' model"):
        save_to_hub_cache(dino, "google/vit-base-patch16-224", tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written by a refused save


def test_builds_are_seeded_and_leave_the_global_rng_alone():
    hub_id = "facebook/dinov3-vits16-pretrain-lvd1689m"
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_teacher_model(hub_id, size="tiny", seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    b = build_teacher_model(hub_id, size="tiny", seed=3).state_dict()
    c = build_teacher_model(hub_id, size="tiny", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.layer.0.attention.q_proj.weight"], c["model.layer.0.attention.q_proj.weight"])
