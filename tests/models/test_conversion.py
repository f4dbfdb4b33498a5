
import pytest
import torch
from safetensors.torch import load_file, save_file

from aloe import bcosify, explain, load_teacher
from aloe.bcos import explanation_mode
from aloe.models import BcosStudent, load_student, shared_linear_weights
from aloe.models.weight_maps import apply_weight_map
from aloe.models.bcosify import weight_map_for

from .tiny_teachers import IMAGE, PATCH, make_teacher_dir

FAMILIES = ["vit", "dinov3", "dinov3_gated", "siglip"]


@pytest.fixture(scope="module", params=FAMILIES)
def teacher_dir(request, tmp_path_factory):
    return make_teacher_dir(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module", params=FAMILIES)
def zero_bias_teacher_dir(request, tmp_path_factory):
    return make_teacher_dir(request.param, tmp_path_factory.mktemp(request.param + "_nobias"), zero_biases=True)


def _pixels(n=3, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, IMAGE, IMAGE, generator=g, dtype=dtype)


def test_b1_student_equals_zero_bias_teacher(zero_bias_teacher_dir):
    teacher = load_teacher(zero_bias_teacher_dir)
    student = bcosify(teacher, b=1)
    x = _pixels()
    t, s = teacher(x, output_hidden_states=True), student(x, output_hidden_states=True)
    assert (t.pooler_output - s.pooler_output).abs().max() <= 1e-5
    assert (t.last_hidden_state - s.last_hidden_state).abs().max() <= 1e-5
    teacher.double()
    student = bcosify(teacher, b=1)
    t, s = teacher(x.double(), output_hidden_states=True), student(x.double(), output_hidden_states=True)
    for i, (a, b) in enumerate(zip(t.hidden_states, s.hidden_states)):
        assert (a - b).abs().max() <= 1e-8, f"hidden state {i}"
    assert (t.pooler_output - s.pooler_output).abs().max() <= 1e-8


def test_biases_matter_so_b1_test_is_meaningful(teacher_dir):
    teacher = load_teacher(teacher_dir)  # biased teacher: the bias-free student must differ
    out_t, out_s = teacher(_pixels()), bcosify(teacher, b=1)(_pixels())
    assert (out_t.pooler_output - out_s.pooler_output).abs().max() > 1e-3


@pytest.mark.parametrize("stem", ["linear", "conv"])
def test_completeness_b2(teacher_dir, stem):
    torch.manual_seed(0)
    student = bcosify(load_teacher(teacher_dir), b=2, stem=stem).double()
    w = torch.randn(student.hidden_size, dtype=torch.float64)
    e = explain(student, _pixels(dtype=torch.float64), lambda o: o.pooler_output @ w)
    assert e.image.shape == (3, 6, IMAGE, IMAGE) and e.constant.shape == (3,) and e.target.shape == (3,)
    err = (e.image.flatten(1).sum(1) + e.constant - e.target).abs()
    assert (err <= 1e-5 * e.target.abs()).all(), err
    # the target is the real model output, not something derived from the explanation
    torch.testing.assert_close(e.target, student(_pixels(dtype=torch.float64)).pooler_output @ w)
    if student.num_prefix_tokens or student.config.position == "learned":
        assert e.constant.abs().min() > 0  # constant inputs do contribute; ignoring them would break completeness


def test_bcosification_code_form_completeness_and_saved_config(teacher_dir, tmp_path):
    """The baselines' other B-cos form: still complete (W(x)x = output), another model than the
    cosine form, and recorded in config.json so that loading rebuilds the same layers."""
    teacher = load_teacher(teacher_dir)
    student = bcosify(teacher, b=2, bcos_form="bcosification_code").double()
    assert student.config.bcos_form == "bcosification_code"
    x = _pixels(dtype=torch.float64)
    w = torch.randn(student.hidden_size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    e = explain(student, x, lambda o: o.pooler_output @ w)
    err = (e.image.flatten(1).sum(1) + e.constant - e.target).abs()
    assert (err <= 1e-5 * e.target.abs()).all(), err
    cosine = bcosify(teacher, b=2).double()
    assert (cosine(x).pooler_output - student(x).pooler_output).abs().max() > 1e-3
    student.save_pretrained(tmp_path / "s")
    loaded = load_student(tmp_path / "s").double()
    assert loaded.config.bcos_form == "bcosification_code"
    forms = {m.form for m in loaded.modules() if hasattr(m, "form")}
    assert forms == {"bcosification_code"}
    torch.testing.assert_close(loaded(x).pooler_output, student(x).pooler_output)


def test_completeness_in_float32_patch_token_target(teacher_dir):
    student = bcosify(load_teacher(teacher_dir), b=2)
    e = explain(student, _pixels(), lambda o: o.last_hidden_state[:, -1].sum(-1))
    err = (e.image.flatten(1).sum(1) + e.constant - e.target).abs()
    assert (err <= 1e-4 * e.target.abs().clamp_min(1.0)).all(), err


def test_explanation_mode_keeps_forward_value(teacher_dir):
    student = bcosify(load_teacher(teacher_dir), b=2).double()
    x = _pixels(dtype=torch.float64)
    plain = student(x, output_hidden_states=True)
    with explanation_mode(student):
        expl = student(x, output_hidden_states=True)
    for a, b in zip(plain.hidden_states + (plain.pooler_output,), expl.hidden_states + (expl.pooler_output,)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_student_mirrors_teacher(teacher_dir):
    teacher = load_teacher(teacher_dir)
    student = bcosify(teacher)
    x = _pixels(2)
    t, s = teacher(x, output_hidden_states=True), student(x, output_hidden_states=True)
    assert len(s.hidden_states) == len(t.hidden_states) == teacher.num_layers + 1
    for a, b in zip(t.hidden_states, s.hidden_states):
        assert a.shape == b.shape
    assert s.last_hidden_state.shape == t.last_hidden_state.shape
    assert s.pooler_output.shape == t.pooler_output.shape
    n_patches = (IMAGE // PATCH) ** 2
    assert t.last_hidden_state.shape[1] == n_patches + teacher.num_prefix_tokens
    for attr in ("family", "image_size", "patch_size", "hidden_size", "num_layers", "num_registers",
                 "num_prefix_tokens"):
        assert getattr(student, attr) == getattr(teacher, attr), attr


def test_teacher_is_frozen(teacher_dir):
    teacher = load_teacher(teacher_dir)
    teacher.train()
    assert not teacher.training and not teacher.hf_model.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_siglip_text_tower_reachable(tmp_path):
    teacher = load_teacher(make_teacher_dir("siglip", tmp_path))
    assert teacher.hf_model.text_model is not None
    ids = torch.tensor([[1, 5, 6, 2]])
    assert teacher.hf_model.get_text_features(input_ids=ids).pooler_output.shape == (1, 32)


def test_save_load_roundtrip(teacher_dir, tmp_path):
    student = bcosify(load_teacher(teacher_dir), b=2)
    student.save_pretrained(tmp_path / "s")
    loaded = load_student(tmp_path / "s")
    assert isinstance(loaded, BcosStudent) and loaded.config == student.config
    x = _pixels(2)
    torch.testing.assert_close(loaded(x).pooler_output, student(x).pooler_output, rtol=0, atol=0)


def test_tampered_checkpoint_names_tensor(tmp_path):
    student = bcosify(load_teacher(make_teacher_dir("vit", tmp_path / "t")))
    student.save_pretrained(tmp_path / "s")
    weights = tmp_path / "s" / "model.safetensors"
    state = load_file(str(weights))
    state["blocks.1.mlp.fc1.weight"] = torch.zeros(3, 3)
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=r"blocks\.1\.mlp\.fc1\.weight.*\(3, 3\).*\(64, 32\)"):
        load_student(tmp_path / "s")
    del state["blocks.1.mlp.fc1.weight"]
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=r"missing tensors \['blocks\.1\.mlp\.fc1\.weight'\]"):
        load_student(tmp_path / "s")


def test_weight_map_is_complete_and_strict(tmp_path):
    teacher = load_teacher(make_teacher_dir("siglip", tmp_path))
    student = bcosify(teacher)
    wmap = weight_map_for(teacher, student.config)
    t_state = teacher.vision.state_dict()
    accounted = {t.teacher for t in wmap.transfers} | set(wmap.dropped) | set(wmap.replaced)
    assert accounted == set(t_state)
    assert all("bias" in k for k in wmap.dropped)  # only biases are dropped for SigLIP
    extra = dict(t_state, **{"encoder.layers.0.mystery.weight": torch.zeros(2)})
    with pytest.raises(KeyError, match="mystery"):
        apply_weight_map(wmap, extra, student.state_dict())
    wrong = dict(t_state, **{"encoder.layers.0.mlp.fc1.weight": torch.zeros(5, 32)})
    with pytest.raises(ValueError, match=r"encoder\.layers\.0\.mlp\.fc1\.weight -> blocks\.0\.mlp\.fc1\.weight"):
        apply_weight_map(wmap, wrong, student.state_dict())


def test_shared_linear_weights_pairs_equal_norms_after_conversion(tmp_path):
    teacher = load_teacher(make_teacher_dir("dinov3", tmp_path))
    student = bcosify(teacher)
    pairs = shared_linear_weights(teacher, student)
    assert len(pairs) == teacher.num_layers * 6  # q, k, v, o, up, down
    for t, s in pairs:
        torch.testing.assert_close(t.norm(), s.norm())
        assert s.requires_grad and not t.requires_grad


def test_load_teacher_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot load teacher"):
        load_teacher(tmp_path / "does-not-exist")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="model_type 'bert'"):
        load_teacher(tmp_path / "bert")


def test_explain_rejects_conventional_model(tmp_path):
    teacher = load_teacher(make_teacher_dir("vit", tmp_path))
    with pytest.raises(TypeError, match="post-hoc"):
        explain(teacher, _pixels(1), lambda o: o.pooler_output.sum(-1))
