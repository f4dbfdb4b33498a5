"""Each loss term equals its direct formula on small tensors."""

import math

import pytest
import torch

from aloe.align.losses import (cosine_loss, feature_loss_fn, global_term, infonce_loss, layer_term, mse_loss,
                               siglip_loss, weight_norm_penalty)
from aloe.depths import default_depths, resolve_depths
from aloe.align.objectives import AlignObjective, build_objective


def _cos(a, b):
    return float(sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)))


def test_cosine_loss_direct_formula():
    torch.manual_seed(0)
    s, t = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    direct = sum(1 - _cos(s[i, j].tolist(), t[i, j].tolist()) for i in range(3) for j in range(5)) / 15
    assert cosine_loss(s, t).item() == pytest.approx(direct, abs=1e-6)
    assert cosine_loss(s, 2.5 * s).item() == pytest.approx(0.0, abs=1e-6)  # scale invariant
    assert cosine_loss(s, -s).item() == pytest.approx(2.0, abs=1e-6)


def test_mse_loss_direct_formula():
    s, t = torch.tensor([[1.0, 2.0], [0.0, -1.0]]), torch.tensor([[0.0, 2.0], [3.0, 1.0]])
    assert mse_loss(s, t).item() == pytest.approx((1 + 0 + 9 + 4) / 4)


def _siglip_direct(s, t, scale=10.0, bias=-10.0):
    n = len(s)
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            logit = scale * _cos(s[i], t[j]) + bias
            total += math.log(1 / (1 + math.exp(-z * logit)))
    return -total / n


def test_siglip_loss_direct_formula_global_and_tokens():
    torch.manual_seed(1)
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    assert siglip_loss(s, t).item() == pytest.approx(_siglip_direct(s.tolist(), t.tolist()), rel=1e-5)
    # tokens: images contrasted at each token position, averaged over positions
    s3, t3 = torch.randn(4, 3, 6), torch.randn(4, 3, 6)
    direct = sum(_siglip_direct(s3[:, k].tolist(), t3[:, k].tolist()) for k in range(3)) / 3
    assert siglip_loss(s3, t3).item() == pytest.approx(direct, rel=1e-5)


def test_infonce_loss_direct_formula():
    torch.manual_seed(2)
    s, t, tau = torch.randn(3, 5), torch.randn(3, 5), 0.1
    sim = [[_cos(s[i].tolist(), t[j].tolist()) / tau for j in range(3)] for i in range(3)]
    row = -sum(sim[i][i] - math.log(sum(math.exp(v) for v in sim[i])) for i in range(3)) / 3
    col = -sum(sim[j][j] - math.log(sum(math.exp(sim[i][j]) for i in range(3))) for j in range(3)) / 3
    assert infonce_loss(s, t, tau).item() == pytest.approx((row + col) / 2, rel=1e-5)


def test_layer_term_sums_depths_and_global_term():
    torch.manual_seed(3)
    hs = tuple(torch.randn(2, 5, 4) for _ in range(4))
    ht = tuple(torch.randn(2, 5, 4) for _ in range(4))
    expected = cosine_loss(hs[1], ht[1]) + cosine_loss(hs[3], ht[3])
    assert layer_term(hs, ht, [1, 3]).item() == pytest.approx(expected.item(), abs=1e-6)
    assert layer_term(hs, ht, [2], mse_loss).item() == pytest.approx(mse_loss(hs[2], ht[2]).item())
    with pytest.raises(ValueError, match="depth 4 is outside"):
        layer_term(hs, ht, [4])
    with pytest.raises(ValueError, match="student shape"):
        global_term(torch.randn(2, 4), torch.randn(2, 5))


def test_weight_norm_penalty_formula_and_zero_for_equal_norms():
    torch.manual_seed(4)
    w_t1, w_s1 = torch.randn(3, 4), torch.randn(3, 4)
    w_t2, w_s2 = torch.randn(5), torch.randn(6, 6)  # shapes may differ: only norms are compared
    direct = (w_t1.norm() - w_s1.norm()) ** 2 + (w_t2.norm() - w_s2.norm()) ** 2
    assert weight_norm_penalty([(w_t1, w_s1), (w_t2, w_s2)], 0.3).item() == pytest.approx(0.3 * direct.item(), rel=1e-5)
    same_norm = w_t1.flip(0)  # a different matrix with the identical Frobenius norm
    assert weight_norm_penalty([(w_t1, same_norm)], 1.0).item() == pytest.approx(0.0, abs=1e-6)
    # gradient flows to the student only
    w_s = w_s1.clone().requires_grad_()
    w_t = w_t1.clone().requires_grad_()
    weight_norm_penalty([(w_t, w_s)], 1.0).backward()
    assert w_t.grad is None and w_s.grad.abs().sum() > 0


def test_depths_default_and_validation():
    assert default_depths(12) == [4, 8, 12]
    assert default_depths(24) == [8, 16, 24]
    assert default_depths(2) == [1, 2]
    assert resolve_depths(None, 12) == [4, 8, 12]
    assert resolve_depths([3, 7, 11], 12) == [3, 7, 11]  # the authors' code's choice
    for bad in ([0], [13], [2.5], []):
        with pytest.raises(ValueError, match="depths"):
            resolve_depths(bad, 12)


def test_unknown_loss_and_objective_named():
    with pytest.raises(ValueError, match="'loss'.*'l1'"):
        feature_loss_fn("l1")

    class S:
        num_layers, hidden_size = 3, 8

    with pytest.raises(ValueError, match="'objective'.*'nope'"):
        build_objective("nope", S())
    with pytest.raises(ValueError, match="depths"):
        build_objective("aloe", S(), depths=[4])


def test_align_objective_total_is_weighted_sum(pair):
    teacher, student = pair
    from aloe.models import shared_linear_weights

    obj = AlignObjective(student.num_layers, lambda_global=0.5, lambda_layers=2.0, alpha=0.1,
                         weight_pairs=shared_linear_weights)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        t_out = teacher(x, output_hidden_states=True)
    loss, terms = obj(student, t_out, x, None, teacher)
    s_out = student(x, output_hidden_states=True)
    g = cosine_loss(s_out.pooler_output, t_out.pooler_output)
    lt = sum(cosine_loss(s_out.hidden_states[d], t_out.hidden_states[d]) for d in (1, 2, 3))
    reg = 0.1 * sum((a.norm() - b.norm()) ** 2 for a, b in shared_linear_weights(teacher, student))
    assert terms["global"].item() == pytest.approx(g.item(), abs=1e-6)
    assert terms["layers"].item() == pytest.approx(lt.item(), abs=1e-6)
    assert terms["reg"].item() == pytest.approx(reg.item(), abs=1e-6)
    assert loss.item() == pytest.approx(0.5 * g.item() + 2.0 * lt.item() + reg.item(), abs=1e-5)
    assert g.item() > 1e-3  # the B-cos student is not yet aligned
