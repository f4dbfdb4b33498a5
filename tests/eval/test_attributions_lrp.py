"""CP-LRP and AttnLRP (aloe.eval.attributions.lrp) on tiny HF teachers of every family."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import transformers as T

from aloe import bcosify
from aloe.eval.attributions import attnlrp, cp_lrp, make_attribution_fn
from aloe.eval.attributions.lrp import lrp_relevance
from aloe.eval.attributions.lrp_rules import LRPRules, with_grad
from aloe.eval.classifier import ProbedClassifier
from aloe.eval.deletion import deletion_curve
from aloe.eval.gridpg import evaluate_gridpg
from aloe.models import Teacher

HALF, IMAGENET = ((0.5,) * 3, (0.5,) * 3), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
METHODS = ("cp_lrp", "attnlrp")
FUNCTIONS = {"cp_lrp": cp_lrp, "attnlrp": attnlrp}
NAMES = ("vit", "dinov3", "siglip", "dinov3-gated")
CONSTANTS = {"vit": {"cls", "position"}, "dinov3": {"cls", "registers"}, "siglip": {"position", "probe"},
             "dinov3-gated": {"cls", "registers"}}
CONSTANT_PARAMS = ("cls_token", "register_tokens", "position_emb", "probe")


def _perturbed(teacher: Teacher, seed: int = 0) -> Teacher:
    """A copy whose biases, LayerNorm weights and constant tokens are random (HF initialises biases to 0,
    LayerNorm weights to 1 and the tokens tiny), so that every rule and constant input matters."""
    t = copy.deepcopy(teacher)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in t.hf_model.named_parameters():
            if name.endswith("bias") or any(k in name for k in CONSTANT_PARAMS):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "norm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
    return t


def _bias_free(teacher: Teacher) -> Teacher:
    t = copy.deepcopy(teacher)
    with torch.no_grad():
        for name, p in t.hf_model.named_parameters():
            if name.endswith("bias"):  # Linear, Conv2d, LayerNorm and nn.MultiheadAttention's in_proj_bias
                p.zero_()
    return t


def _gated_dinov3() -> Teacher:
    torch.manual_seed(3)
    cfg = T.DINOv3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            image_size=32, patch_size=8, num_register_tokens=2, use_gated_mlp=True, hidden_act="silu",
                            layerscale_value=0.5)
    return Teacher(T.DINOv3ViTModel(cfg), "dinov3", *IMAGENET, source="test")


@pytest.fixture(scope="module")
def teachers(teacher_factory):
    """The tiny 2-layer teachers (32 px, patch 8, 2 heads; DINOv3 with 2 registers and RoPE), perturbed."""
    out = {f: teacher_factory(f, 0) for f in ("vit", "dinov3", "siglip")}
    out["dinov3-gated"] = _gated_dinov3()
    return {name: _perturbed(t, i) for i, (name, t) in enumerate(out.items())}


def _head(classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, classes, generator=g), torch.randn(classes, generator=g)


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _hf_score(teacher: Teacher, x: torch.Tensor, w: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return (teacher(x).pooler_output * w[:, classes].T.to(x.dtype)).sum(1)


@pytest.mark.parametrize("name", NAMES)
def test_forward_reproduces_the_hf_forward(teachers, name):
    w, _ = _head()
    x, classes = _images(3), torch.tensor([0, 4, 2])
    t64 = copy.deepcopy(teachers[name]).double()
    for method in METHODS:
        with torch.no_grad():
            ref32, ref64 = _hf_score(teachers[name], x, w, classes), _hf_score(t64, x.double(), w, classes)
        r32 = lrp_relevance(teachers[name], w, x, classes, method=method)
        r64 = lrp_relevance(t64, w, x.double(), classes, method=method, batch_size=2)
        torch.testing.assert_close(r32.score, ref32, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r64.score, ref64, atol=1e-12, rtol=1e-12)
        assert r64.pixels.shape == (3, 3, 32, 32) and set(r64.constants) == CONSTANTS[name]
    assert not any(p.requires_grad for p in teachers[name].parameters())  # the teacher is left as it was


@pytest.mark.parametrize("name", NAMES)
def test_cp_lrp_is_conservative_on_a_bias_free_teacher(teachers, name):
    """Pixels + [CLS] / registers / position embeddings / probe sum to the logit (head bias 0 too)."""
    w, _ = _head()
    x, classes = _images(3, seed=2).double(), torch.tensor([1, 3, 0])
    teacher = _bias_free(teachers[name]).double()
    r = lrp_relevance(teacher, w, x, classes, method="cp_lrp")
    total = r.pixels.flatten(1).sum(1) + sum(r.constants.values())
    with torch.no_grad():  # ProbedClassifier's logits (head bias 0), in float64
        logits = (teacher(x).pooler_output @ w.double())[torch.arange(3), classes]
    torch.testing.assert_close(r.score, logits, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(total, logits, atol=1e-10, rtol=1e-10)
    assert (r.pixels.flatten(1).sum(1) - logits).abs().min() > 1e-3  # the constant inputs do take a share
    if name == "siglip":  # the probe is only a query: constant attention gives it nothing
        assert torch.equal(r.constants["probe"], torch.zeros(3, dtype=torch.float64))
    # with biases the biases absorb relevance: the same sum no longer gives the logit
    biased = lrp_relevance(copy.deepcopy(teachers[name]).double(), w, x, classes, method="cp_lrp")
    assert (biased.pixels.flatten(1).sum(1) + sum(biased.constants.values()) - biased.score).abs().min() > 1e-3
    # full AttnLRP is not conservative (the softmax rule drops the Taylor bias), but it explains the same logit
    full = lrp_relevance(teacher, w, x, classes, method="attnlrp", epsilon=0.0)
    torch.testing.assert_close(full.score, logits, atol=1e-12, rtol=1e-12)
    assert (full.pixels.flatten(1).sum(1) + sum(full.constants.values()) - logits).abs().max() > 1e-3


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def _hand_lrp(vit, xn: torch.Tensor, w: torch.Tensor, method: str, eps: float):
    """Explicit LRP messages (no autograd) through a one-block HF ViT for one image xn (3, H, W).

    Returns the relevance of the pixels (3, H, W), of the [CLS] token and of the position embeddings.
    """
    layer, att, e = vit.layers[0], vit.layers[0].attention, vit.embeddings
    p, heads = vit.config.patch_size, att.num_attention_heads
    conv = e.patch_embeddings.projection
    w_pe = conv.weight.reshape(conv.weight.shape[0], -1)

    def lin(x, m):
        return x @ m.weight.T + m.bias

    def ln(x, m):
        c = x - x.mean(-1, keepdim=True)
        n = c / (c.pow(2).mean(-1, keepdim=True) + m.eps).sqrt()
        return c, n, n * m.weight + m.bias

    def ln_back(x, c, n, y, m, r_y):
        r_c = n * m.weight * r_y / y  # affine part: linear, the bias keeps its share; then 1/std: identity rule
        t = r_c / c
        return x * (t - t.mean(-1, keepdim=True))  # centring (I - 11^T / D) x: linear

    def lin_back(x, weight, z, r_z):  # epsilon rule, Eq. 8
        return x * ((r_z / _stab(z, eps)) @ weight)

    def add_back(a, b, r):
        return a * r / (a + b), b * r / (a + b)

    def heads_of(y):
        return y.reshape(y.shape[0], heads, -1).transpose(0, 1)

    def merged(y):
        return y.transpose(0, 1).reshape(y.shape[1], -1)

    # forward
    patches = F.unfold(xn[None], p, stride=p)[0].T  # (P, 3 p p)
    ep = patches @ w_pe.T + conv.bias
    tok = torch.cat([e.cls_token[0], ep])
    pos = e.position_embeddings[0]
    h0 = tok + pos
    c1, n1, y1 = ln(h0, layer.layernorm_before)
    q, k, v = lin(y1, att.q_proj), lin(y1, att.k_proj), lin(y1, att.v_proj)
    qh, kh, vh = heads_of(q), heads_of(k), heads_of(v)
    z = qh @ kh.transpose(-1, -2)
    s = z * att.scaling
    a_ = torch.softmax(s, dim=-1)
    oh = a_ @ vh
    o = merged(oh)
    a = lin(o, att.o_proj)
    h1 = a + h0
    c2, n2, y2 = ln(h1, layer.layernorm_after)
    f1 = lin(y2, layer.mlp.fc1)
    g = layer.mlp.activation_fn(f1)
    f2 = lin(g, layer.mlp.fc2)
    h2 = f2 + h1
    cf, nf, yf = ln(h2, vit.layernorm)

    # backward
    r_yf = torch.zeros_like(yf)
    r_yf[0] = yf[0] * w  # the score pooled . w, pooled = the final [CLS]
    r_h2 = ln_back(h2, cf, nf, yf, vit.layernorm, r_yf)
    r_f2, r_h1 = add_back(f2, h1, r_h2)
    r_f1 = lin_back(g, layer.mlp.fc2.weight, f2, r_f2)  # then GELU: identity rule (Eq. 9)
    r_y2 = lin_back(y2, layer.mlp.fc1.weight, f1, r_f1)
    r_h1 = r_h1 + ln_back(h1, c2, n2, y2, layer.layernorm_after, r_y2)
    r_a, r_h0 = add_back(a, h0, r_h1)
    r_o = lin_back(o, att.o_proj.weight, a, r_a)
    r_on = heads_of(r_o) / _stab(oh, eps)  # A V: epsilon rule over the sum over keys
    if method == "cp_lrp":  # A constant: all to V
        r_v, r_q, r_k = vh * (a_.transpose(-1, -2) @ r_on), torch.zeros_like(qh), torch.zeros_like(kh)
    else:  # uniform rule (Eq. 7): half to A, half to V; softmax rule (Prop. 3.1); q k^T: eps + uniform
        r_v = 0.5 * vh * (a_.transpose(-1, -2) @ r_on)
        r_att = 0.5 * a_ * (r_on @ vh.transpose(-1, -2))
        r_s = s * (r_att - a_ * r_att.sum(-1, keepdim=True))
        r_zn = r_s / _stab(z, eps)
        r_q, r_k = 0.5 * qh * (r_zn @ kh), 0.5 * kh * (r_zn.transpose(-1, -2) @ qh)
    r_y1 = sum(lin_back(y1, m.weight, out, merged(r)) for m, out, r in
               ((att.q_proj, q, r_q), (att.k_proj, k, r_k), (att.v_proj, v, r_v)))
    r_h0 = r_h0 + ln_back(h0, c1, n1, y1, layer.layernorm_before, r_y1)
    r_tok, r_pos = add_back(tok, pos, r_h0)
    r_patches = lin_back(patches, w_pe, ep, r_tok[1:])
    r_pixels = F.fold(r_patches.T[None], tuple(xn.shape[-2:]), p, stride=p)[0]
    return r_pixels, r_tok[0].sum(), r_pos.sum()


@pytest.mark.parametrize("epsilon", [0.0, 0.05])
@pytest.mark.parametrize("method", METHODS)
def test_relevance_equals_hand_computed_lrp_on_one_block_vit(method, epsilon):
    """A one-block ViT with 4 patches + [CLS] (5 tokens): the rules computed as explicit messages."""
    torch.manual_seed(0)
    cfg = T.ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, image_size=8,
                      patch_size=4)
    teacher = _perturbed(Teacher(T.ViTModel(cfg, add_pooling_layer=False), "vit", *HALF, source="test")).double()
    w = torch.randn(8, 3, dtype=torch.float64)
    x, classes = torch.rand(2, 3, 8, 8, dtype=torch.float64), torch.tensor([2, 0])
    r = lrp_relevance(teacher, w, x, classes, method=method, epsilon=epsilon)
    with torch.no_grad():
        for i in range(2):
            pixels, cls, pos = _hand_lrp(teacher.vision, teacher.preprocess(x[i : i + 1])[0], w[:, classes[i]],
                                         method, epsilon)
            torch.testing.assert_close(r.pixels[i], pixels, atol=1e-10, rtol=1e-8)
            torch.testing.assert_close(r.constants["cls"][i], cls, atol=1e-10, rtol=1e-8)
            torch.testing.assert_close(r.constants["position"][i], pos, atol=1e-10, rtol=1e-8)
    other = lrp_relevance(teacher, w, x, classes, method=method, epsilon=0.05 - epsilon)
    assert (other.pixels - r.pixels).abs().max() > 1e-6  # epsilon does enter


def _input_x_gradient(teacher: Teacher, w: torch.Tensor, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    xn = teacher.preprocess(x).detach().requires_grad_(True)
    pooled = teacher.vision(pixel_values=xn)
    pooled = pooled.last_hidden_state[:, 0] if teacher.family == "vit" else pooled.pooler_output
    (grad,) = torch.autograd.grad((pooled * w[:, classes].T).sum(), xn)
    return xn * grad


@pytest.mark.parametrize("name", NAMES)
def test_both_methods_run_on_every_family_and_differ_from_input_x_gradient(teachers, name):
    teacher = teachers[name]
    w, b = _head()
    clf = ProbedClassifier(teacher, w, b).eval()
    x, classes = _images(3, seed=4), torch.tensor([2, 2, 4])
    plain = _input_x_gradient(teacher, w, x, classes)
    maps = {}
    for method in METHODS:
        maps[method] = make_attribution_fn(method, clf)(x, classes)
        m = maps[method]
        assert m.shape == (3, 3, 32, 32) and m.dtype == torch.float32 and torch.isfinite(m).all()
        assert m.flatten(1).abs().sum(1).min() > 0
        assert (m - plain).norm() > 0.05 * plain.norm()
        torch.testing.assert_close(m, FUNCTIONS[method](teacher, w, x, classes, batch_size=2))
    assert (maps["cp_lrp"] - maps["attnlrp"]).norm() > 0.05 * maps["cp_lrp"].norm()
    eps = make_attribution_fn("attnlrp", clf, epsilon=0.0)(x, classes)
    torch.testing.assert_close(eps, maps["attnlrp"], atol=1e-4, rtol=1e-3)  # 1e-6 is a stabiliser only


@pytest.mark.parametrize("name", ["vit", "dinov3", "siglip"])
@pytest.mark.parametrize("method", METHODS)
def test_gridpg_and_deletion_with_lrp(teacher_factory, name, method):
    backbone, images = teacher_factory(name, 0), _images(24, seed=11)
    labels = torch.arange(24) % 4
    with torch.no_grad():  # a least-squares head that gives image i the class i % 4 (24 images, 32 features)
        feats = backbone(images).pooler_output.double()
        weight = torch.linalg.pinv(feats - feats.mean(0)) @ (10.0 * F.one_hot(labels, 4).double())
        clf = ProbedClassifier(backbone, weight.float(), (-feats.mean(0) @ weight).float())
        assert torch.equal(clf(images).argmax(1), labels)
    attribute = make_attribution_fn(method, clf)
    r = evaluate_gridpg(clf, attribute, images, labels, threshold=0.0, num_grids=2, grid_size=32)
    assert 0.0 <= r.mean <= 1.0 and r.count == 8 and r.zero_mass == 0
    x = images[:4]
    res = deletion_curve(clf, x, labels[:4], attribute(x, labels[:4]), block=8)
    assert len(res.curve) == 9 and all(0.0 <= c <= 1.0 for c in res.curve) and 0.0 <= res.area <= 0.8


def test_refusals(teachers, tiny_teacher):
    w, _ = _head()
    x, classes = _images(1), torch.tensor([0])
    with pytest.raises(TypeError, match="HF teachers"):
        cp_lrp(bcosify(tiny_teacher).eval(), w, x, classes)
    with pytest.raises(ValueError, match="32 px"):
        attnlrp(teachers["vit"], w, torch.rand(1, 3, 40, 40), classes)
    with pytest.raises(ValueError, match="unknown LRP method"):
        LRPRules("lrp")
    with pytest.raises(ValueError, match="epsilon"):
        cp_lrp(teachers["vit"], w, x, classes, epsilon=-1.0)


def test_rules_one_at_a_time():
    """Each rule as relevance in = input * gradient against relevance out = output * output gradient."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    r_out = torch.randn(4, 6, generator=g, dtype=torch.float64)  # relevance arriving at the output
    attn = LRPRules("attnlrp", epsilon=0.1)

    def relevance(y, *inputs):  # with grad_out = R_out / y, R_out = y * grad_out
        return [i * gi for i, gi in zip(inputs, torch.autograd.grad(y, inputs, r_out / y.detach()))]

    gelu = torch.nn.GELU()
    y = attn.activation(gelu, x)
    assert torch.equal(y, gelu(x))
    torch.testing.assert_close(relevance(y, x)[0], r_out)  # identity rule
    lin = torch.nn.Linear(6, 6).double()
    z = lin(x)
    (r_x,) = relevance(attn.linear(x, lin), x)
    torch.testing.assert_close(r_x, x * ((r_out / _stab(z, 0.1)) @ lin.weight))  # epsilon rule
    ln = torch.nn.LayerNorm(6, elementwise_affine=False).double()
    y = attn.layer_norm(x, ln)
    torch.testing.assert_close(y, ln(x))
    torch.testing.assert_close(relevance(y, x)[0].sum(1), r_out.sum(1))  # centring + identity: conservative
    up = torch.randn(4, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    silu = torch.nn.SiLU()
    y = attn.gated(silu, x, up)
    r_gate, r_up = relevance(y, x, up)
    torch.testing.assert_close(r_gate, 0.5 * r_out)  # uniform rule (and identity through SiLU)
    torch.testing.assert_close(r_up, 0.5 * r_out)
    r_gate_cp = relevance(LRPRules("cp_lrp").gated(silu, x, up), up)[0]
    torch.testing.assert_close(r_gate_cp, r_out)  # CP-LRP: constant gate, all to the up projection
    v = torch.randn(3, 5, dtype=torch.float64, generator=g).requires_grad_(True)
    assert torch.equal(with_grad(v, v, 0.5), v)
