import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aloe.bcos import (BcosConv2d, BcosLayerNorm, BcosLinear, DetachableActivation, explanation_mode,
                       explanation_to_rgba, fold_first_layer, to_six_channel)
from aloe.bcos.linear import EPS

torch.manual_seed(0)


@pytest.mark.parametrize("b", [1.0, 2.0, 3.0])
def test_bcos_linear_matches_formula(b):
    layer = BcosLinear(5, 4, b=b).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    w = layer.weight
    lin = x @ w.T
    cos = lin / ((w.norm(dim=1)[None] + EPS) * (x.norm(dim=1, keepdim=True) + EPS))
    expected = lin * cos.abs() ** (b - 1)
    torch.testing.assert_close(layer(x), expected)
    with explanation_mode(layer):  # the explanation path computes the same value its own way
        torch.testing.assert_close(layer(x), expected)


def test_bcos_linear_b2_gradient_matches_autograd_of_formula():
    layer = BcosLinear(5, 4, b=2).double()
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, w: F.linear(x, w) * F.linear(x, w).abs()
                             / ((w.norm(dim=1) + EPS) * (x.norm(dim=1, keepdim=True) + EPS)),
                             (x, layer.weight))
    (gx, gw) = torch.autograd.grad(layer(x).sum(), (x, layer.weight))
    ref = F.linear(x, layer.weight)
    ref = ref * ref.abs() / ((layer.weight.norm(dim=1) + EPS) * (x.norm(dim=1, keepdim=True) + EPS))
    (rx, rw) = torch.autograd.grad(ref.sum(), (x, layer.weight))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


def test_bcos_linear_b2_is_signed_square_over_norms():
    layer = BcosLinear(3, 1, b=2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))
    x = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)
    # w·x = 11, ||w|| = 5, ||x|| = 3 -> 11 * 11 / 15
    torch.testing.assert_close(layer(x), torch.tensor([[121.0 / 15.0]], dtype=torch.float64), rtol=1e-5, atol=0)


def test_bcosification_code_form_is_norm_w_times_cosine_form():
    # hand-made: w·x = 11, ||w|| = 5, ||x|| = 3; cosine: 11 * 11 / 15, bcosification_code: 11 * 11 / 3
    layers = {form: BcosLinear(3, 1, b=2, form=form).double() for form in ("cosine", "bcosification_code")}
    for layer in layers.values():
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))
    x = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)
    expected = {"cosine": 121.0 / 15.0, "bcosification_code": 121.0 / 3.0}
    for form, layer in layers.items():
        for mode in (False, True):  # the fused B = 2 path and the explanation path
            with explanation_mode(layer, mode):
                torch.testing.assert_close(layer(x), torch.tensor([[expected[form]]], dtype=torch.float64),
                                           rtol=1e-5, atol=0)
    # random rows: the ratio is exactly ||w|| per output (B = 2), ||w||^2 for B = 3; convs alike
    x = torch.randn(7, 5, dtype=torch.float64)
    for b in (2.0, 3.0):
        cos, code = BcosLinear(5, 4, b=b).double(), BcosLinear(5, 4, b=b, form="bcosification_code").double()
        code.load_state_dict(cos.state_dict())
        ratio = (cos.weight.norm(dim=1) + EPS) ** (b - 1)
        torch.testing.assert_close(code(x), cos(x) * ratio)
    conv_cos = BcosConv2d(6, 4, 3, padding=1).double()
    conv_code = BcosConv2d(6, 4, 3, padding=1, form="bcosification_code").double()
    conv_code.load_state_dict(conv_cos.state_dict())
    x4 = torch.rand(2, 6, 5, 5, dtype=torch.float64)
    ratio = (conv_cos.weight.flatten(1).norm(dim=1) + EPS)[None, :, None, None]
    torch.testing.assert_close(conv_code(x4), conv_cos(x4) * ratio)
    with pytest.raises(ValueError, match="form"):
        BcosLinear(3, 1, form="v1")


@pytest.mark.parametrize("form", ["cosine", "bcosification_code"])
def test_explanation_mode_gradient_is_dynamic_weight_in_both_forms(form):
    layer = BcosLinear(6, 3, form=form).double()
    x = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    with explanation_mode(layer):
        y = layer(x)
        (g,) = torch.autograd.grad(y[:, 1].sum(), x)
    torch.testing.assert_close((g * x).sum(1), y[:, 1].detach())


def test_bcos_conv_matches_unfolded_linear():
    conv = BcosConv2d(6, 4, 3, stride=2, padding=1).double()
    x = torch.rand(2, 6, 9, 9, dtype=torch.float64)
    cols = F.unfold(x, 3, padding=1, stride=2).transpose(1, 2)  # (N, L, 6*9)
    lin = BcosLinear(54, 4).double()
    with torch.no_grad():
        lin.weight.copy_(conv.weight.flatten(1))
    expected = lin(cols).transpose(1, 2).reshape(2, 4, 5, 5)
    torch.testing.assert_close(conv(x), expected)


def test_explanation_mode_gradient_is_dynamic_weight():
    layer = BcosLinear(6, 3).double()
    x = torch.randn(1, 6, dtype=torch.float64, requires_grad=True)
    with explanation_mode(layer):
        y = layer(x)
        (g,) = torch.autograd.grad(y[0, 1], x)
    torch.testing.assert_close((g * x).sum(), y[0, 1].detach())
    # outside explanation mode the gradient includes the dynamic factor's own derivative
    (g_full,) = torch.autograd.grad(layer(x)[0, 1], x)
    assert not torch.allclose(g_full, g)
    assert layer.explanation_mode is False


@pytest.mark.parametrize("centred", [True, False])
def test_layernorm_value_and_detach(centred):
    norm = BcosLayerNorm(8, centred=centred).double()
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 8, dtype=torch.float64)
    if centred:
        torch.testing.assert_close(norm(x), F.layer_norm(x, (8,), norm.weight, None, norm.eps))
    else:
        torch.testing.assert_close(norm(x), x / (x.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt() * norm.weight)
    x.requires_grad_(True)
    with explanation_mode(norm):
        y = norm(x)
        (g,) = torch.autograd.grad(y[1, 2], x)
    torch.testing.assert_close(y, norm(x))
    torch.testing.assert_close((g * x).sum(), y[1, 2].detach())


@pytest.mark.parametrize("name,fn", [("gelu", F.gelu), ("gelu_pytorch_tanh", lambda x: F.gelu(x, approximate="tanh")),
                                     ("silu", F.silu)])
def test_detachable_activation(name, fn):
    act = DetachableActivation(name).double()
    x = torch.randn(50, dtype=torch.float64)
    torch.testing.assert_close(act.gate(x) * x, fn(x))
    with explanation_mode(act):
        torch.testing.assert_close(act(x), fn(x))


def test_fold_first_layer_equals_normalised_conv():
    w = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    m = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    expected = F.conv2d((x - m) / s, w, stride=2)
    got = F.conv2d(to_six_channel(x), fold_first_layer(w, mean, std), stride=2)
    torch.testing.assert_close(got, expected)


def test_six_channel_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        to_six_channel(torch.rand(2, 1, 4, 4))


def test_render_colour_and_alpha():
    w = torch.zeros(6, 20, 20, dtype=torch.float64)
    w[0, :, :10] = 1.0  # left half: weight on the red channel only
    w[3:, :, 10:] = 1.0  # right half: weight on the inverted channels only
    contrib = w.clone()
    rgba = explanation_to_rgba(w, contrib, smooth=1)
    assert rgba.shape == (20, 20, 4)
    np.testing.assert_allclose(rgba[5, 2, :3], [1.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(rgba[5, 15, :3], [0.0, 0.0, 0.0], atol=1e-9)
    assert rgba[..., 3].max() == pytest.approx(1.0) and rgba[..., 3].min() >= 0
    contrib[:, :, :10] *= -1  # negative contribution -> transparent
    assert explanation_to_rgba(w, contrib, smooth=1)[5, 2, 3] == 0.0


def test_render_alpha_is_the_raw_weight_norm_on_positive_contributions():
    # a hand-computed 2 x 2 case (B-cos v2 gradient_to_image), no smoothing, scale = the max alpha
    w = torch.zeros(6, 2, 2, dtype=torch.float64)
    w[0, 0, 0] = 3.0  # pure red, |W| = 3
    w[:, 0, 1] = 0.5  # every channel alike: grey, |W| = sqrt(6) / 2
    w[2, 1, 0] = 4.0  # blue, but its contribution is negative: transparent
    w[0, 1, 1], w[3, 1, 1] = -1.0, 2.0  # only the inverted red channel counts: black, |W| = sqrt(5)
    contrib = w.abs()
    contrib[:, 1, 0] *= -1
    rgba = explanation_to_rgba(w, contrib, smooth=1, alpha_percentile=100.0)
    np.testing.assert_allclose(rgba[0, 0], [1, 0, 0, 1.0], atol=1e-9)
    np.testing.assert_allclose(rgba[0, 1], [0.5, 0.5, 0.5, math.sqrt(6) / 2 / 3], atol=1e-9)
    np.testing.assert_allclose(rgba[1, 0], [0, 0, 1, 0.0], atol=1e-9)
    np.testing.assert_allclose(rgba[1, 1], [0, 0, 0, math.sqrt(5) / 3], atol=1e-9)
    contrib[:, 0, 0] = 0.0  # a zero contribution is not positive: transparent as well
    assert explanation_to_rgba(w, contrib, smooth=1, alpha_percentile=100.0)[0, 0, 3] == 0.0


def test_bcos_rejects_b_below_one():
    with pytest.raises(ValueError, match="b must be >= 1"):
        BcosLinear(3, 3, b=0.5)
    assert math.isclose(BcosLinear(3, 3, b=1.5).b, 1.5)
