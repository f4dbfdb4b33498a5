import pytest
import torch

from aloe.eval.attributions import integrated_gradients, lime
from aloe.eval.attributions.captum_methods import block_mask


def smooth_model(x):
    """Two logits: a nonlinear function of the top-left quarter, and a constant."""
    s = torch.tanh(x[:, :, :16, :16]).sum(dim=(1, 2, 3)) / 50.0
    return torch.stack([s**2 + s, torch.zeros_like(s)], dim=1)


def test_integrated_gradients_completeness_and_locality():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    attr = integrated_gradients(smooth_model, x, torch.tensor([0, 0]), n_steps=50)
    assert attr.shape == x.shape
    gap = smooth_model(x)[:, 0] - smooth_model(torch.zeros_like(x))[:, 0]
    torch.testing.assert_close(attr.flatten(1).sum(1), gap, rtol=1e-3, atol=1e-4)
    assert attr[:, :, 16:, :].abs().max() == 0 and attr[:, :, :, 16:].abs().max() == 0


def test_lime_finds_the_region():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) + 0.5
    a1 = lime(smooth_model, x, torch.tensor([0, 0]), block=8, n_samples=200, seed=3)
    a2 = lime(smooth_model, x, torch.tensor([0, 0]), block=8, n_samples=200, seed=3)
    assert torch.equal(a1, a2)  # seeded
    assert a1.shape == (2, 1, 32, 32)
    blocks = a1[:, 0, ::8, ::8].flatten(1)  # (2, 16) one value per block
    top4 = blocks.topk(4, dim=1).indices.sort(dim=1).values
    assert top4.tolist() == [[0, 1, 4, 5]] * 2  # the top-left 16x16 = blocks 0, 1, 4, 5
    assert blocks[:, [0, 1, 4, 5]].min() > 0


def test_block_mask():
    m = block_mask(4, 6, 2)
    assert m[0, 0].tolist() == [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
    with pytest.raises(ValueError, match="multiple"):
        block_mask(5, 4, 2)


def test_bcos_attribution_sums_to_the_class_logit(tiny_teacher):
    from aloe import bcosify
    from aloe.eval.attributions import make_attribution_fn
    from aloe.eval.classifier import ProbedClassifier
    from aloe.models import explain

    student = bcosify(tiny_teacher)
    g = torch.Generator().manual_seed(0)
    clf = ProbedClassifier(student, torch.randn(32, 5, generator=g), torch.randn(5, generator=g))
    x = torch.rand(3, 3, 32, 32, generator=g)
    classes = torch.tensor([4, 0, 2])
    maps = make_attribution_fn("bcos", clf)(x, classes)
    assert maps.shape == (3, 6, 32, 32)
    w = clf.weight[:, classes].T
    constant = explain(student, x, lambda o: (o.pooler_output * w).sum(1)).constant
    with torch.no_grad():
        logits = clf(x)[torch.arange(3), classes] - clf.bias[classes]
    torch.testing.assert_close(maps.flatten(1).sum(1) + constant, logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown attribution"):
        make_attribution_fn("gradcam", clf)


@pytest.mark.parametrize("family", ["vit", "dinov3"])
def test_chefercam_matches_a_loop_rollout(teacher_factory, family):
    from aloe.eval.attributions import chefercam

    teacher = teacher_factory(family, 0)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(32, 5, generator=g)
    x = torch.rand(2, 3, 32, 32, generator=g)
    classes = torch.tensor([3, 1])
    before = teacher.vision.config._attn_implementation
    maps = chefercam(teacher, w, x, classes)
    assert teacher.vision.config._attn_implementation == before
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all() and maps.min() >= 0

    # reference: one image at a time, retain_grad + backward, explicit rollout loop
    p = teacher.num_prefix_tokens
    teacher.vision.set_attn_implementation("eager")
    try:
        for i in range(2):
            xi = x[i : i + 1].clone().requires_grad_(True)
            out = teacher.vision(pixel_values=teacher.preprocess(xi), output_attentions=True)
            for a in out.attentions:
                a.retain_grad()
            feat = out.last_hidden_state[0, 0] if family == "vit" else out.pooler_output[0]
            (feat @ w[:, classes[i]]).backward()
            t = out.attentions[0].shape[-1]
            r = torch.eye(t)
            for a in out.attentions:
                cam = torch.stack([(a.grad[0, h] * a[0, h]).clamp(min=0) for h in range(a.shape[1])]).mean(0)
                r = r + cam.detach() @ r
            grid = r[0, p:].reshape(1, 1, 4, 4)
            ref = torch.nn.functional.interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
            torch.testing.assert_close(maps[i], ref, atol=1e-5, rtol=1e-4)
    finally:
        teacher.vision.set_attn_implementation(before)


def test_chefercam_refuses_siglip(teacher_factory):
    from aloe.eval.attributions import chefercam

    with pytest.raises(ValueError, match="CLS"):
        chefercam(teacher_factory("siglip", 0), torch.randn(32, 3), torch.rand(1, 3, 32, 32), torch.tensor([0]))
