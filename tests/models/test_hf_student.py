"""The student as a Hugging Face model: Auto classes, directory files, canonical bytes, legacy
directories, hub ids from the cache, and weight initialisation left to bcosify."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel

from aloe import BcosImageProcessor, BcosStudent, StudentConfig, bcosify, load_student, load_teacher
from aloe.bcos import BcosConvStem
from aloe.models.bcosify import INIT_SEED
from aloe.models.hub_cache import write_snapshot
from aloe.tensorfile import save_tensors

from .student_helpers import make_siglip_teacher_dir, random_pixels
from .tiny_teachers import IMAGE, PATCH, make_teacher_dir

ALIGNMENT = {"b": 2, "loss": "cosine", "depths": [1, 2], "total_steps": 10}
RESULTS = {"lp_top1/shapes": 81.25, "zeroshot_top1/shapes": 40.0}


@pytest.fixture(scope="module", params=["vit", "dinov3", "siglip"])
def saved(request, tmp_path_factory):
    """(student, its saved directory) per family; the SigLIP one with its teacher's text tower."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "siglip":
        teacher = load_teacher(make_siglip_teacher_dir(root / "teacher"))
    else:
        teacher = load_teacher(make_teacher_dir(request.param, root / "teacher"))
    student = bcosify(teacher, b=2)
    text = dict(text_model=teacher.hf_model, tokenizer=teacher.tokenizer) if request.param == "siglip" else {}
    student.save_pretrained(root / "student", teacher=f"org/{request.param}-teacher", alignment=ALIGNMENT,
                            results=RESULTS, **text)
    return student, root / "student"


def _outputs_equal(a, b, x):
    oa, ob = a(x, output_hidden_states=True), b(x, output_hidden_states=True)
    for s, t in zip((oa.last_hidden_state, oa.pooler_output, *oa.hidden_states),
                    (ob.last_hidden_state, ob.pooler_output, *ob.hidden_states)):
        torch.testing.assert_close(s, t, rtol=0, atol=0)


def test_directory_is_a_hugging_face_model_directory(saved):
    student, directory = saved
    files = sorted(p.name for p in directory.iterdir())
    expected = ["README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    assert files == sorted(expected + (["text"] if student.family == "siglip" else []))
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "aloe_bcos_student" and config["architectures"] == ["BcosStudent"]
    assert config["teacher"] == f"org/{student.family}-teacher" and config["alignment"] == ALIGNMENT
    processor = json.loads((directory / "preprocessor_config.json").read_text())
    assert processor["image_processor_type"] == "BcosImageProcessor" and processor["size"] == IMAGE
    assert processor["transform"] == ("resize" if student.family == "siglip" else "center_crop")
    assert processor["do_normalize"] is False and processor["patch_size"] == PATCH
    card = (directory / "README.md").read_text()
    assert f'base_model: "org/{student.family}-teacher"' in card and f"`org/{student.family}-teacher`" in card
    assert "| total_steps | 10 |" in card and "| lp_top1/shapes | 81.25 |" in card and "| depths | `[1, 2]` |" in card


def test_auto_classes_give_the_same_student(saved):
    student, directory = saved
    config = AutoConfig.from_pretrained(directory)
    assert isinstance(config, StudentConfig) and config == student.config
    assert config.teacher == f"org/{student.family}-teacher" and config.results == RESULTS
    model = AutoModel.from_pretrained(directory)
    assert type(model) is BcosStudent and not model.training
    x = random_pixels(2, IMAGE, IMAGE)
    _outputs_equal(model, student, x)
    torch.testing.assert_close(model(pixel_values=x).pooler_output, student(x).pooler_output, rtol=0, atol=0)
    processor = AutoImageProcessor.from_pretrained(directory)
    assert isinstance(processor, BcosImageProcessor) and processor.to_dict() == student.image_processor.to_dict()
    image = (random_pixels(1, 45, 61)[0] * 255).to(torch.uint8)
    torch.testing.assert_close(processor(image)["pixel_values"], student.image_processor(image)["pixel_values"],
                               rtol=0, atol=0)
    assert (model.text_tower is None) == (student.family != "siglip")


def test_resaving_gives_the_same_bytes(saved, tmp_path):
    _, directory = saved
    load_student(directory).save_pretrained(tmp_path / "again")
    BcosStudent.from_pretrained(tmp_path / "again").save_pretrained(tmp_path / "third")
    original = {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    for copy in (tmp_path / "again", tmp_path / "third"):
        assert {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == original


def test_save_takes_what_push_to_hub_passes_and_nothing_unknown(saved, tmp_path):
    student, directory = saved
    student.save_pretrained(tmp_path / "s", max_shard_size="50GB", safe_serialization=True)  # push_to_hub's call
    assert (tmp_path / "s" / "model.safetensors").read_bytes() == (directory / "model.safetensors").read_bytes()
    with pytest.raises(TypeError, match=r"unexpected arguments \['teachr'\]"):
        student.save_pretrained(tmp_path / "t", teachr="org/x")
    assert not (tmp_path / "t").exists()


def test_legacy_directory_loads_and_converts(saved, tmp_path):
    student, directory = saved
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(directory / "model.safetensors", old / "model.safetensors")
    (old / "config.json").write_text(json.dumps({"aloe_student": student.config.architecture()}))
    x = random_pixels(2, IMAGE, IMAGE)
    for loaded in (load_student(old), BcosStudent.from_pretrained(old)):
        _outputs_equal(loaded, student, x)
        assert loaded.image_processor.to_dict() == BcosImageProcessor.for_student(student.config).to_dict()
    with pytest.raises(ValueError):  # no model_type: transformers cannot tell what it is
        AutoModel.from_pretrained(old)
    load_student(old).save_pretrained(tmp_path / "new")
    _outputs_equal(AutoModel.from_pretrained(tmp_path / "new"), student, x)


def test_hub_id_is_read_from_the_cache_offline(saved, tmp_path):
    student, directory = saved
    cache = tmp_path / "hub"
    shutil.copytree(directory, tmp_path / "upload")
    write_snapshot(tmp_path / "upload", "aloe-test/student", cache)
    loaded = BcosStudent.from_pretrained("aloe-test/student", cache_dir=cache)
    _outputs_equal(loaded, student, random_pixels(1, IMAGE, IMAGE))
    assert loaded.config.teacher == student.config.teacher and loaded.name_or_path == "aloe-test/student"
    assert (loaded.text_tower is None) == (student.family != "siglip")
    with pytest.raises(FileNotFoundError, match=rf"cannot load student 'aloe-test/missing'.*{cache}.*HF_HUB_OFFLINE"):
        BcosStudent.from_pretrained("aloe-test/missing", cache_dir=cache)
    with pytest.raises(FileNotFoundError, match="student checkpoint is incomplete: .*config.json does not exist"):
        load_student(tmp_path / "no" / "such" / "dir")


def test_from_pretrained_takes_what_auto_model_passes_and_nothing_unknown(saved):
    student, directory = saved
    loaded = BcosStudent.from_pretrained(directory, config=student.config, _from_auto=True, trust_remote_code=False,
                                         revision=None, dtype=torch.float64)
    assert loaded.weight_dtype == torch.float64
    with pytest.raises(TypeError, match=r"unexpected arguments \['device_mapp'\]"):
        BcosStudent.from_pretrained(directory, device_mapp="cpu")


def test_metadata_is_checked_and_kept(saved, tmp_path):
    student, _ = saved
    with pytest.raises(ValueError, match="'teacher' must be a string"):
        student.save_pretrained(tmp_path / "bad", teacher=3)
    with pytest.raises(ValueError, match="'results' must hold JSON values only"):
        student.save_pretrained(tmp_path / "bad", results={"x": object()})
    assert not (tmp_path / "bad").exists()
    load_student(saved[1]).save_pretrained(tmp_path / "s", results={"knn_top1/shapes": 70.0})
    assert load_student(tmp_path / "s").config.results == {"knn_top1/shapes": 70.0}
    assert load_student(tmp_path / "s").config.alignment == ALIGNMENT  # kept from the loaded config


def test_post_init_leaves_bcosify_alone(tmp_path):
    """transformers' weight initialisation must not touch what bcosify makes: a conv stem is the
    layer's own seeded initialisation, and the global RNG is left as it was."""
    teacher = load_teacher(make_teacher_dir("vit", tmp_path / "t"))
    torch.manual_seed(7)
    before = torch.get_rng_state()
    student = bcosify(teacher, stem="conv")
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(INIT_SEED)  # the stem is the first layer the student builds
    stem = BcosConvStem(student.hidden_size, PATCH, b=2.0, eps=student.config.eps)
    for name, value in stem.state_dict().items():
        torch.testing.assert_close(student.patch_embed.state_dict()[name], value, rtol=0, atol=0)
    assert bcosify(teacher, stem="conv").patch_embed.state_dict().keys() == stem.state_dict().keys()


def test_forward_takes_pixel_values_once(saved):
    student, _ = saved
    x = random_pixels(1, IMAGE, IMAGE)
    torch.testing.assert_close(student(pixel_values=x).pooler_output, student(x).pooler_output, rtol=0, atol=0)
    with pytest.raises(TypeError, match="pass the pixels once"):
        student(x, pixel_values=x)
    with pytest.raises(TypeError, match="pass the pixels once"):
        student()


def test_tampered_weights_in_the_new_layout_are_named(saved, tmp_path):
    student, directory = saved
    shutil.copytree(directory, tmp_path / "s")
    state = {k: v.contiguous() for k, v in student.state_dict().items()}
    state["norm.weight"] = torch.zeros(3)
    save_tensors(tmp_path / "s" / "model.safetensors", state)
    with pytest.raises(ValueError, match=r"model\.safetensors: tensor 'norm\.weight' has shape \(3,\)"):
        AutoModel.from_pretrained(tmp_path / "s")


def test_importing_aloe_stays_light():
    light = "import sys, aloe, aloe.registry; assert 'torch' not in sys.modules; print(aloe.registry.BCOS_FORMS)"
    run = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True)
    assert run.returncode == 0 and "cosine" in run.stdout, run.stderr
    names = "BcosImageProcessor, BcosStudent, StudentConfig, bcosify, explain, load_head, load_student, load_teacher"
    full = (f"from aloe import {names}; import aloe.bcos.linear, aloe.models.student_config as c; "
            "assert c.BCOS_FORMS == aloe.bcos.linear.FORMS and c.STEMS == ('linear', 'conv'); "
            "assert BcosStudent.config_class is StudentConfig")
    run = subprocess.run([sys.executable, "-c", full], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
