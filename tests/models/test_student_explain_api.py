"""student.explain(images, target, head=None): class indices of a linear-probe head, text prompts
through the teacher's text tower, images of any kind, and the colour image, in one call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from aloe import BcosStudent, bcosify, explain, load_head, load_teacher
from aloe.bcos import explanation_mode, explanation_to_rgba, smooth_for
from aloe.data.zero_shot import canonicalize_text
from aloe.eval.classifier import ProbedClassifier

from .student_helpers import PROMPTS, make_siglip_teacher_dir, random_pixels, write_head
from .tiny_teachers import IMAGE, make_teacher_dir


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    root = tmp_path_factory.mktemp("vit")
    student = bcosify(load_teacher(make_teacher_dir("vit", root / "teacher")))
    student.save_pretrained(root / "student")
    return student, root


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
    """(teacher, the directory of its student saved with the text tower)."""
    root = tmp_path_factory.mktemp("siglip")
    teacher = load_teacher(make_siglip_teacher_dir(root / "teacher"))
    bcosify(teacher).save_pretrained(root / "student", text_model=teacher.hf_model, tokenizer=teacher.tokenizer)
    return teacher, root / "student"


def _same(a, b, tol=1e-10):
    for name in ("image", "constant", "target", "weights"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=tol, atol=tol, msg=name)


def _complete(e, rel=1e-5):
    err = (e.image.flatten(1).sum(1) + e.constant - e.target).abs()
    assert (err <= rel * e.target.abs().clamp_min(1e-3)).all(), err


def test_class_index_equals_the_callable_with_the_head(vit):
    float32, root = vit
    student = BcosStudent.from_pretrained(root / "student", dtype=torch.float64)
    head = load_head(write_head(root / "h.safetensors", float32))  # a head of the float32 weights
    x = random_pixels(3, IMAGE, IMAGE, dtype=torch.float64)
    w = head.weight.double()
    _same(student.explain(x, 2, head=head), explain(student, x, lambda o: o.pooler_output @ w[:, 2]))
    per_image = student.explain(x, [0, 4, 1], head=head)
    classes = torch.tensor([0, 4, 1])
    _same(per_image, explain(student, x, lambda o: (o.pooler_output * w[:, classes].T).sum(1)))
    _same(student.explain(x, torch.tensor([0, 4, 1]), head=head), per_image)
    _complete(per_image)
    assert per_image.rgba.shape == (3, IMAGE, IMAGE, 4) and per_image.rgba.dtype == np.float32


@pytest.mark.parametrize("kind", ["linear", "bcos"])
def test_target_is_the_classifiers_logit_less_its_bias(vit, kind):
    student, root = vit
    head = load_head(write_head(root / f"{kind}.safetensors", student, kind=kind))
    x = random_pixels(2, IMAGE, IMAGE)
    e = student.explain(x, [3, 1], head=head)
    clf = ProbedClassifier(student, head.weight, head.bias, head=kind).eval()
    with torch.no_grad():
        logits = clf(x)
    expected = logits[[0, 1], [3, 1]] - (head.bias[[3, 1]] if kind == "linear" else 0)
    torch.testing.assert_close(e.target, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head.logits(student(x).pooler_output), logits, rtol=1e-5, atol=1e-5)
    _complete(e, rel=1e-4)
    if kind == "bcos":  # its dynamic factor is detached like every B-cos layer's
        with explanation_mode(clf):
            assert torch.allclose(clf(x)[[0, 1], [3, 1]], e.target, atol=1e-5)


def test_heads_by_path_attached_and_from_pretrained(vit, tmp_path):
    student, root = vit
    path = write_head(tmp_path / "h.safetensors", student, names=["a", "b", "c", "d", "e"])
    x = random_pixels(2, IMAGE, IMAGE)
    by_path = student.explain(x, 1, head=path)
    assert load_head(path).classes == ["a", "b", "c", "d", "e"] and load_head(path).kind == "linear"
    loaded = BcosStudent.from_pretrained(root / "student", head=path)
    _same(loaded.explain(x, 1), by_path)
    copy = BcosStudent.from_pretrained(root / "student")
    with pytest.raises(ValueError, match="a class index needs a linear-probe head: pass head="):
        copy.explain(x, 1)
    copy.attach_head(path)
    _same(copy.explain(x, 1), by_path)
    other = write_head(tmp_path / "other.safetensors", student, checksum="0" * 64)
    with pytest.raises(ValueError, match="trained on features of another backbone"):
        copy.attach_head(other)
    with pytest.raises(ValueError, match="trained on features of another backbone"):
        BcosStudent.from_pretrained(root / "student", head=other)
    with pytest.raises(ValueError, match="trained on features of another backbone"):
        load_head(other, backbone=root / "student")
    assert load_head(path, backbone=root / "student").num_classes == 5
    copy.attach_head(other, check=False)
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 5\)"):
        copy.explain(x, 5)
    with pytest.raises(ValueError, match=r"3 class indices for 2 images"):
        copy.explain(x, [0, 1, 2])


def test_prompt_equals_the_callable_with_the_text_embedding(siglip):
    teacher, directory = siglip
    student = BcosStudent.from_pretrained(directory, dtype=torch.float64)
    x = random_pixels(2, IMAGE, IMAGE, dtype=torch.float64)
    # the text embedding by hand, as zero-shot builds it: canonicalised, padded to 64 tokens, normalised
    ids = teacher.tokenizer([canonicalize_text(PROMPTS[0])], padding="max_length", max_length=64)["input_ids"]
    with torch.no_grad():
        t = teacher.hf_model.get_text_features(input_ids=torch.tensor(ids)).pooler_output[0].double()
    t = t / t.norm()
    e = student.explain(x, PROMPTS[0])
    by_hand = explain(student, x, lambda o: (o.pooler_output @ t) / o.pooler_output.norm(dim=-1).detach())
    _same(e, by_hand, tol=1e-6)  # the text embedding is float32 on both sides, normalised in its own order
    with torch.no_grad():
        torch.testing.assert_close(e.target, F.cosine_similarity(student(x).pooler_output, t[None]))
    _complete(e)
    both = student.explain(x, [PROMPTS[0], PROMPTS[1]])
    torch.testing.assert_close(both.target[0], e.target[0])
    assert not torch.allclose(both.target[1], e.target[1])


def test_prompts_need_a_siglip_student_with_its_text_tower(vit, siglip, tmp_path):
    student, _ = vit
    x = random_pixels(1, IMAGE, IMAGE)
    with pytest.raises(ValueError, match="needs a SigLIP student .* this one is 'vit'"):
        student.explain(x, "a photo of a red star")
    teacher, directory = siglip
    bare = bcosify(teacher)
    with pytest.raises(ValueError, match=r"no text tower; save it with save_pretrained\(dir, text_model="):
        bare.explain(x, "a photo of a red star")
    bare.attach_text_tower(teacher)
    _same(bare.explain(x, "a photo of a red star"), BcosStudent.from_pretrained(directory).explain(
        x, "a photo of a red star"), tol=1e-6)


def test_images_of_any_kind_go_through_the_students_processor(vit, tmp_path):
    student, root = vit
    head = load_head(write_head(root / "h2.safetensors", student))
    array = (random_pixels(1, 45, 61)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(array).save(tmp_path / "img.png")
    pixels = student.image_processor(array)["pixel_values"]
    reference = student.explain(pixels, 0, head=head)
    for image in (Image.fromarray(array), tmp_path / "img.png", torch.from_numpy(array).permute(2, 0, 1)):
        e = student.explain(image, 0, head=head)
        torch.testing.assert_close(e.pixels, pixels, rtol=0, atol=0)
        _same(e, reference, tol=0)
    rgba = explanation_to_rgba(reference.weights[0], reference.image[0], smooth=smooth_for(IMAGE))
    np.testing.assert_array_equal(reference.rgba[0], rgba.astype(np.float32))
    assert reference.rgba.min() >= 0 and reference.rgba.max() <= 1
    bigger = student.explain(random_pixels(1, 48, 40), 0, head=head)  # pixel tensors: any multiple of the patch
    assert bigger.image.shape == (1, 6, 48, 40) and bigger.rgba.shape == (1, 48, 40, 4)


def test_bad_targets_are_refused(vit):
    student, root = vit
    x = random_pixels(1, IMAGE, IMAGE)
    for bad in (2.5, True, None):
        with pytest.raises(TypeError, match="target must be a class index, a text prompt or a function"):
            student.explain(x, bad)
    with pytest.raises(ValueError, match="head= goes with a class index"):
        student.explain(x, lambda o: o.pooler_output.sum(-1), head=root / "h.safetensors")
    e = student.explain(x, lambda o: o.pooler_output.sum(-1))
    _same(e, explain(student, x, lambda o: o.pooler_output.sum(-1)), tol=0)
