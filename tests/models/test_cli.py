"""The ``aloe`` command, run as a user runs it: explain a JPEG of another size, embed a folder,
describe a student; errors name the file or argument."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoModel

import aloe.models  # noqa: F401 (registers the Auto classes)
from aloe import bcosify, load_teacher
from aloe.cli import main

from .student_helpers import PROMPTS, make_siglip_teacher_dir, write_head
from .tiny_teachers import IMAGE, make_teacher_dir

CLASSES = ["red circle", "green square", "blue triangle", "yellow star", "purple cross"]


def aloe_command(*args, cwd=None):
    exe = shutil.which("aloe")
    assert exe, "the aloe console script is not installed (pip install -e .)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    student = bcosify(load_teacher(make_teacher_dir("vit", root / "teacher")))
    student.save_pretrained(root / "student", teacher="google/vit-base-patch16-224")
    head = write_head(root / "shapes.head.safetensors", student, classes=5, names=CLASSES)
    rng = np.random.default_rng(0)
    jpeg = root / "photo.jpg"  # another size and aspect than the student's training images
    Image.fromarray(rng.integers(0, 255, (3 * IMAGE, 2 * IMAGE + 5, 3), dtype=np.uint8)).save(jpeg, quality=90)
    return root, student, head, jpeg


def test_explain_a_jpeg_of_another_size(saved, tmp_path):
    root, student, head, jpeg = saved
    proc = aloe_command("explain", jpeg, "--model", root / "student", "--head", head, "--target", 3, "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "class 3 (yellow star)" in proc.stdout
    png, rgba = np.asarray(Image.open(tmp_path / "photo.png")), np.asarray(Image.open(tmp_path / "photo.rgba.png"))
    assert png.shape == (IMAGE, 2 * IMAGE, 3) and rgba.shape == (IMAGE, IMAGE, 4)
    # the PNG is what the API gives for the same image and target
    model = AutoModel.from_pretrained(root / "student")
    e = model.explain(Image.open(jpeg), 3, head=head)
    assert np.abs(rgba.astype(float) - np.round(e.rgba[0] * 255)).max() <= 1
    score = float(proc.stdout.rsplit("score ", 1)[1])
    assert score == pytest.approx(float(e.target[0]), rel=1e-3)


def test_explain_defaults_to_the_predicted_class(saved, tmp_path):
    root, student, head, jpeg = saved
    proc = aloe_command("explain", jpeg, "--model", root / "student", "--head", head, "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    model = AutoModel.from_pretrained(root / "student", head=head)
    with torch.no_grad():
        pixels = model.image_processor(Image.open(jpeg))["pixel_values"]
        predicted = int(model.probe_head.logits(model(pixels).pooler_output).argmax(1)[0])
    assert f"class {predicted} ({CLASSES[predicted]})" in proc.stdout


def test_explain_a_prompt_with_the_text_tower(tmp_path):
    teacher = load_teacher(make_siglip_teacher_dir(tmp_path / "teacher"))
    bcosify(teacher).save_pretrained(tmp_path / "student", text_model=teacher.hf_model, tokenizer=teacher.tokenizer)
    image = tmp_path / "a.png"
    Image.fromarray(np.full((40, 70, 3), 200, dtype=np.uint8)).save(image)
    proc = aloe_command("explain", image, "--model", tmp_path / "student", "--prompt", PROMPTS[0], "-o", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert f"prompt {PROMPTS[0]!r}" in proc.stdout and (tmp_path / "o" / "a.png").is_file()


def test_embed_a_folder(saved, tmp_path):
    root, student, _, jpeg = saved
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(jpeg, folder / "b.jpg")
    Image.fromarray(np.zeros((IMAGE, IMAGE, 3), dtype=np.uint8)).save(folder / "sub" / "a.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "features.safetensors"
    proc = aloe_command("embed", folder, "--model", root / "student", "-o", out, "--batch-size", 1)
    assert proc.returncode == 0, proc.stderr
    with safe_open(str(out), framework="pt") as f:
        features, files = f.get_tensor("features"), json.loads(f.metadata()["files"])
    assert files == ["b.jpg", "sub/a.png"] and features.shape == (2, student.hidden_size)
    with torch.no_grad():
        expected = student(student.image_processor([Image.open(folder / n) for n in files])["pixel_values"])
    assert torch.allclose(features, expected.pooler_output, atol=1e-5)


def test_info_names_the_teacher_and_shape(saved):
    root, student, _, _ = saved
    proc = aloe_command("info", root / "student")
    assert proc.returncode == 0, proc.stderr
    assert "google/vit-base-patch16-224" in proc.stdout and f"{student.num_layers} blocks" in proc.stdout
    assert f"width {student.hidden_size}" in proc.stdout


def test_errors_name_the_file_or_argument(saved, tmp_path, capsys):
    root, _, head, jpeg = saved
    cases = [
        (("explain", tmp_path / "missing.jpg", "--model", root / "student", "--head", head, "-o", tmp_path),
         "missing.jpg does not exist"),
        (("explain", jpeg, "--model", tmp_path / "nowhere", "--head", head, "-o", tmp_path), "--model"),
        (("explain", jpeg, "--model", root / "student", "-o", tmp_path), "--head"),
        (("explain", jpeg, "--model", root / "student", "--head", head, "--target", 7, "-o", tmp_path), "7"),
        (("embed", tmp_path / "empty", "--model", root / "student", "-o", tmp_path / "f.safetensors"), "empty"),
    ]
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    cases.append((("explain", tmp_path / "broken.jpg", "--model", root / "student", "--head", head, "-o", tmp_path),
                  "broken.jpg cannot be read"))
    for args, needle in cases:  # in-process: the same main() the console script calls
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and needle in err, (args, err)
