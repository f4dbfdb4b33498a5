"""CheferCAM against its authors' rules on hand-computed cases (Chefer, Gur & Wolf, ICCV 2021, "Generic
Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers"): per block
Ā = E_h[(∇A ⊙ A)^+] (eq. 5), R ← R + Ā · R from R = I (eq. 6), the map is the [CLS] row of R over
the patch tokens (their ViT notebook: ``R[0, 1:]``)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from aloe.eval.attributions import chefercam
from aloe.eval.attributions.attention_maps import AttentionTrace
from aloe.models import Teacher

chefercam_module = importlib.import_module("aloe.eval.attributions.chefercam")  # the package re-exports the function

# 2 heads, 3 tokens ([CLS], patch 1, patch 2): attention A and the gradient G = d(score)/dA, per block
A1 = [[[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]],
      [[0.2, 0.4, 0.4], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]]]
G1 = [[[2.0, -1.0, 1.0], [0.0, 1.0, -2.0], [1.0, 1.0, 1.0]],
      [[-1.0, 2.0, 1.0], [1.0, -1.0, 0.0], [0.0, 2.0, -1.0]]]
# (G1 ⊙ A1)^+ = [[1, 0, .2], [0, .6, 0], [.2, .2, .6]] and [[0, .8, .4], [.3, 0, 0], [0, .5, 0]]
# Ā1 = [[.5, .4, .3], [.15, .3, 0], [.1, .35, .3]];  R1 = I + Ā1: [CLS] row [1.5, .4, .3]
A2 = [[[1 / 3] * 3] * 3] * 2
G2 = [[[3.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 3.0, 0.0]],
      [[0.0, 3.0, -3.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]
# Ā2 = [[.5, .5, 0], [.5, 0, .5], [0, .5, 0]];  R2 = R1 + Ā2 R1: [CLS] row [1.5, .4, .3] + .5 [1.5, .4, .3]
# + .5 [.15, 1.3, 0] = [2.325, 1.25, .45]  (the other order, R1 + R1 Ā2, would give patches [1.3, .5])
EXPECTED = {1: [0.4, 0.3], 2: [1.25, 0.45]}


def _fake_trace(monkeypatch, blocks):
    """A trace whose score is sum_b <G_b, A_b>, so that d(score)/dA_b = G_b exactly."""
    attentions = [torch.tensor([a], requires_grad=True) for a, _ in blocks]  # (1, heads, 3, 3)

    def trace(backbone, images, output_hidden_states=False):
        score = sum((torch.tensor([g]) * a).sum() for a, (_, g) in zip(attentions, blocks))
        return AttentionTrace(score.reshape(1, 1), attentions, None, None, None)

    monkeypatch.setattr(chefercam_module, "trace_attention", trace)


@pytest.mark.parametrize("depth", [1, 2])
def test_chefercam_follows_the_rules_on_a_hand_computed_case(monkeypatch, depth):
    _fake_trace(monkeypatch, [(A1, G1), (A2, G2)][:depth])
    backbone = SimpleNamespace(family="vit", num_prefix_tokens=1, patch_size=4)
    images = torch.zeros(1, 3, 4, 8)  # a 1 x 2 patch grid: [CLS] + 2 patches
    maps = chefercam(backbone, torch.ones(1, 1), images, torch.tensor([0]))  # head: score itself
    grid = torch.tensor(EXPECTED[depth]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(maps, F.interpolate(grid, size=(4, 8), mode="bilinear", align_corners=False)[:, 0])
    torch.testing.assert_close(maps[0, :, 0], torch.full((4,), EXPECTED[depth][0]))  # edge pixels: the values
    torch.testing.assert_close(maps[0, :, -1], torch.full((4,), EXPECTED[depth][1]))


def test_chefercam_on_a_one_block_vit_with_three_tokens():
    """A real 1-block HF ViT (8 x 16 px, patch 8: [CLS] + 2 patches): A and dA from autograd, rule by hand."""
    import transformers as T

    torch.manual_seed(0)
    cfg = T.ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                      image_size=(8, 16), patch_size=8)
    teacher = Teacher(T.ViTModel(cfg, add_pooling_layer=False), "vit", (0.5,) * 3, (0.5,) * 3, source="test")
    w = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    x = torch.rand(1, 3, 8, 16, generator=torch.Generator().manual_seed(2))
    maps = chefercam(teacher, w, x, torch.tensor([1]))

    teacher.vision.set_attn_implementation("eager")
    xi = x.clone().requires_grad_(True)
    out = teacher.vision(pixel_values=(xi - 0.5) / 0.5, output_attentions=True)
    (grad,) = torch.autograd.grad(out.last_hidden_state[0, 0] @ w[:, 1], out.attentions[0])
    a, g = out.attentions[0][0].tolist(), grad[0].tolist()  # (heads, 3, 3) as nested lists
    cam = [[sum(max(g[h][i][j] * a[h][i][j], 0.0) for h in range(2)) / 2 for j in range(3)] for i in range(3)]
    cls_row = [float(j == 0) + cam[0][j] for j in range(3)]  # (I + Ā I)[0]
    grid = torch.tensor(cls_row[1:]).reshape(1, 1, 1, 2)
    expected = F.interpolate(grid, size=(8, 16), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(maps, expected, atol=1e-6, rtol=1e-5)
    assert maps[0, 0, 0] > 0 or maps[0, 0, -1] > 0
