"""LeGrad, CheferCAM on students, attention recording, and post-hoc methods on B-cos students."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from aloe import bcosify, load_teacher
from aloe.data.eval_loader import EvalLoader
from aloe.eval.attributions import chefercam, legrad, make_attribution_fn
from aloe.eval.attributions.attention_maps import recorded_attention
from aloe.eval.attributions.legrad import EARLIER_DEFAULTS
from aloe.eval.classifier import ProbedClassifier
from aloe.eval.gridpg import evaluate_gridpg
from aloe.eval.stages import run_gridpg
from aloe.models import Teacher
from aloe.models.backbones import checkpoint_checksum, load_backbone

from eval_helpers import save_tiny_teacher

HALF = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def backbones(teacher_factory):
    """Tiny 2-layer backbones (32 px, patch 8, 2 heads): three teachers and two B-cos students."""
    teachers = {f: teacher_factory(f, 0) for f in ("vit", "dinov3", "siglip")}
    students = {f"student-{f}": bcosify(teachers[f]).eval() for f in ("dinov3", "siglip")}
    return {**teachers, **students}


def _head(dim: int = 32, classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(dim, classes, generator=g), torch.randn(classes, generator=g)


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _upsample(rows: torch.Tensor) -> torch.Tensor:
    """(T_patch,) -> (32, 32) as the methods do."""
    return F.interpolate(rows.reshape(1, 1, 4, 4), size=(32, 32), mode="bilinear", align_corners=False)[0, 0]


def test_student_forward_unchanged_with_recording(backbones):
    from aloe.bcos import explanation_mode

    student = backbones["student-dinov3"]
    x = _images(2)
    with torch.no_grad():
        plain = student(x, output_hidden_states=True)
        with recorded_attention(student) as record:
            recorded = student(x, output_hidden_states=True)
    torch.testing.assert_close(recorded.pooler_output, plain.pooler_output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(recorded.last_hidden_state, plain.last_hidden_state, atol=1e-5, rtol=1e-5)
    t = 1 + student.num_registers + 16
    assert len(record) == student.num_layers and all(a.shape == (2, 2, t, t) for a in record)
    torch.testing.assert_close(record[0].sum(-1), torch.ones(2, 2, t))
    assert all(m.record is None for m in student.modules() if hasattr(m, "record"))  # default path restored

    # in the graph with grad enabled, and unchanged in explanation mode too
    with recorded_attention(student) as record, torch.enable_grad():
        student(x)
    assert record[0].requires_grad
    with explanation_mode(student), recorded_attention(student) as record, torch.no_grad():
        explained = student(x)
    torch.testing.assert_close(explained.pooler_output, plain.pooler_output, atol=1e-5, rtol=1e-5)
    assert len(record) == student.num_layers


@pytest.mark.parametrize("name", ["vit", "dinov3", "siglip", "student-dinov3", "student-siglip"])
def test_legrad_shape_and_range(backbones, name):
    w, _ = _head()
    maps = legrad(backbones[name], w, _images(3), torch.tensor([0, 4, 2]))
    assert maps.shape == (3, 32, 32)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.flatten(1).max(1).values.min() > 0


def test_legrad_equals_hand_computation_on_one_layer_vit():
    import transformers as T

    torch.manual_seed(0)
    cfg = T.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                      image_size=32, patch_size=8)
    teacher = Teacher(T.ViTModel(cfg, add_pooling_layer=False), "vit", HALF, HALF, source="test")
    w, _ = _head()
    x, classes = _images(2), torch.tensor([3, 1])
    maps = legrad(teacher, w, x, classes, **EARLIER_DEFAULTS)
    # one layer: s^1 = logit
    torch.testing.assert_close(legrad(teacher, w, x, classes, layerwise=False, **EARLIER_DEFAULTS), maps)

    teacher.vision.set_attn_implementation("eager")
    for i in range(2):
        xi = x[i : i + 1].clone().requires_grad_(True)
        out = teacher.vision(pixel_values=(xi - 0.5) / 0.5, output_attentions=True)
        logit = out.last_hidden_state[0, 0] @ w[:, classes[i]]
        (grad,) = torch.autograd.grad(logit, out.attentions[0])  # (1, heads, 17, 17)
        heads = [grad[0, h].clamp(min=0) for h in range(2)]
        rows = ((heads[0] + heads[1]) / 2)[0, 1:]  # [CLS] query row, patch columns
        torch.testing.assert_close(maps[i], _upsample(rows), atol=1e-6, rtol=1e-5)


def _layer_list(backbone) -> nn.ModuleList:
    if not isinstance(backbone, Teacher):
        return backbone.blocks
    lists = [m for m in backbone.vision.modules() if isinstance(m, nn.ModuleList) and len(m) == backbone.num_layers]
    assert len(lists) == 1
    return lists[0]


@contextlib.contextmanager
def truncated(backbone, depth: int):
    """The backbone cut to its first ``depth`` blocks (final norm and pooling kept)."""
    layers = _layer_list(backbone)
    removed = list(layers)[depth:]
    del layers[depth:]
    try:
        yield backbone
    finally:
        layers.extend(removed)


def _last_attention_and_logit(backbone, x, w_col):
    """Forward a (truncated) backbone without any aloe helper; its last attention matrix and logit."""
    if isinstance(backbone, Teacher):
        out = backbone.vision(pixel_values=backbone.preprocess(x), output_attentions=True)
        pooled = out.last_hidden_state[:, 0] if backbone.family == "vit" else out.pooler_output
        return out.attentions[-1], (pooled[0] @ w_col)
    with recorded_attention(backbone) as record:
        pooled = backbone(x).pooler_output
    return record[-1], pooled[0] @ w_col


@pytest.mark.parametrize("name", ["vit", "dinov3", "siglip", "student-dinov3", "student-siglip"])
def test_legrad_layer_scores_are_truncated_model_logits(backbones, name):
    """Layer l's signal is the last-layer LeGrad of the model cut after block l (paper: per-layer readout)."""
    backbone = backbones[name]
    w, _ = _head()
    x, classes = _images(2, seed=5), torch.tensor([2, 0])
    maps = legrad(backbone, w, x, classes, **EARLIER_DEFAULTS)
    p, eager = backbone.num_prefix_tokens, isinstance(backbone, Teacher)
    if eager:
        previous = backbone.vision.config._attn_implementation
        backbone.vision.set_attn_implementation("eager")
    try:
        for i in range(2):
            xi = x[i : i + 1].clone().requires_grad_(True)
            per_layer = []
            for depth in range(1, backbone.num_layers + 1):
                with truncated(backbone, depth):
                    attn, logit = _last_attention_and_logit(backbone, xi, w[:, classes[i]])
                    (grad,) = torch.autograd.grad(logit, attn)
                e = grad[0].clamp(min=0).mean(0)  # heads averaged: (T, T)
                per_layer.append((e[0] if p else e.mean(0))[p:])
            torch.testing.assert_close(maps[i], _upsample(torch.stack(per_layer).mean(0)), atol=1e-6, rtol=1e-4)
    finally:
        if eager:
            backbone.vision.set_attn_implementation(previous)
    assert len(_layer_list(backbone)) == backbone.num_layers


def test_chefercam_on_student_matches_a_loop_rollout(backbones):
    student = backbones["student-dinov3"]
    w, _ = _head()
    x, classes = _images(2, seed=7), torch.tensor([1, 3])
    maps = chefercam(student, w, x, classes)
    assert maps.shape == (2, 32, 32) and maps.min() >= 0
    p = student.num_prefix_tokens
    for i in range(2):
        with recorded_attention(student) as record, torch.enable_grad():
            logit = student(x[i : i + 1]).pooler_output[0] @ w[:, classes[i]]
            grads = torch.autograd.grad(logit, record)
        t = record[0].shape[-1]
        r = torch.eye(t)
        for a, g in zip(record, grads):
            r = r + torch.stack([(g[0, h] * a[0, h]).clamp(min=0) for h in range(2)]).mean(0).detach() @ r
        torch.testing.assert_close(maps[i], _upsample(r[0, p:]), atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="CLS"):
        chefercam(backbones["student-siglip"], w, x, classes)


@pytest.mark.parametrize("name", ["dinov3", "student-dinov3"])
@pytest.mark.parametrize("method", ["legrad", "chefercam"])
def test_gridpg_with_attention_methods(backbones, name, method):
    backbone, images = backbones[name], _images(24, seed=11)
    with torch.no_grad():  # a head whose class c points at image c's centred feature: diverse predictions
        feats = backbone(images).pooler_output
        centred = feats - feats.mean(0)
        clf = ProbedClassifier(backbone, (centred[:4] / centred[:4].norm(dim=1, keepdim=True)).T, torch.zeros(4))
        labels = clf(images).argmax(1)
    assert len(labels.unique()) == 4  # every class predicted somewhere: grids can be built
    r = evaluate_gridpg(clf, make_attribution_fn(method, clf), images, labels, threshold=0.0, num_grids=2,
                        grid_size=32)
    assert 0.0 <= r.mean <= 1.0 and r.count == 8 and 0 <= r.zero_mass <= 8


def test_posthoc_methods_run_on_a_bcos_student(backbones):
    """Paper Fig. B4: IG, LIME, LeGrad and CheferCAM on a B-cos student through ProbedClassifier."""
    clf = ProbedClassifier(backbones["student-dinov3"], *_head()).eval()
    x, classes = _images(2, seed=13), torch.tensor([4, 1])
    ig = make_attribution_fn("ig", clf, n_steps=16)(x, classes)
    with torch.no_grad():
        gap = clf(x)[torch.arange(2), classes] - clf(torch.zeros_like(x))[torch.arange(2), classes]
    torch.testing.assert_close(ig.flatten(1).sum(1), gap, atol=0.05 * gap.abs().max().item(), rtol=0.05)
    lime_maps = make_attribution_fn("lime", clf, block=16, n_samples=24, perturbations_per_eval=24)(x, classes)
    assert lime_maps.shape == (2, 1, 32, 32) and torch.isfinite(lime_maps).all() and lime_maps.abs().sum() > 0
    for method in ("legrad", "chefercam"):
        maps = make_attribution_fn(method, clf)(x, classes)
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all() and maps.min() >= 0 and maps.sum() > 0


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_run_gridpg_stage_with_legrad(tmp_path, world, kind):
    """The workflow entry point: method="legrad" on a saved teacher / B-cos student and a bound head."""
    path = save_tiny_teacher(tmp_path / "teacher", "vit")
    if kind == "student":
        bcosify(load_teacher(str(path))).save_pretrained(tmp_path / "student")
        path = tmp_path / "student"
    backbone = load_backbone(path, kind)
    with torch.no_grad():  # nearest-class-mean head on the training split: >= 4 confidently right classes
        feats, labels = zip(*((backbone(b.pixels).pooler_output, b.labels)
                              for b in EvalLoader(str(world / "shapes"), "train", image_size=32, batch_size=64)))
        feats, labels = torch.cat(feats), torch.cat(labels)
        means = torch.stack([feats[labels == c].mean(0) for c in range(4)])
        centred = means - feats.mean(0)
        weight = (centred / centred.norm(dim=1, keepdim=True)).T * 20
        bias = -(weight * feats.mean(0)[:, None]).sum(0)
    save_file({"weight": weight.contiguous(), "bias": bias.contiguous()}, str(tmp_path / "head.safetensors"),
              metadata={"backbone_checksum": checkpoint_checksum(path)})
    rec = run_gridpg(tmp_path / "gridpg.json", backbone_path=str(path), backbone_kind=kind,
                     head_path=str(tmp_path / "head.safetensors"), dataset_dir=str(world / "shapes"), split="test",
                     method="legrad", method_options={"layerwise": True}, backbone="tiny-vit", variant=kind,
                     dataset="shapes", threshold=0.0, num_grids=2)
    assert 0.0 <= rec["value"] <= 1.0 and rec["params"]["method"] == "legrad"
    assert rec["params"]["cells_scored"] == 8 and rec["params"]["cells_zero_mass"] <= 8
    assert (tmp_path / "gridpg.json").exists()
