import math

import pytest
import torch
import torch.nn.functional as F

from aloe.eval import dense
from aloe.eval.dense import angular_loss, evaluate_dense_probe, gradient_loss, make_head, predict_dense, silog_loss
from aloe.eval.dense import train_dense_probe
from aloe.eval.dense_metrics import depth_metrics
from aloe.eval.dense_dpt import (
    DPTDenseHead, bins_to_depth, depth_bins, kappa_from_raw, uncertainty_angular_loss, uncertainty_nll,
)


def test_depth_bins_are_probe3d_linear_bins():
    b = depth_bins()
    assert b.shape == (256,) and b[0] == pytest.approx(1e-3) and b[-1] == pytest.approx(10.0)
    torch.testing.assert_close(b[1:] - b[:-1], torch.full((255,), (10 - 1e-3) / 255), rtol=0, atol=1e-5)
    head = DPTDenseHead(8, 2, "depth", hidden_dim=4)
    assert (head.min_depth, head.max_depth) == (dense.MIN_DEPTH, dense.MAX_DEPTH)


def test_bins_to_depth_by_hand():
    # 3 bins (0, 0.5, 1): p = (ReLU(l) + 0.1) / sum; logits (2, -1, 0) -> p = (2.1, 0.1, 0.1) / 2.3
    logits = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64).reshape(1, 3, 1, 1)
    d = bins_to_depth(logits, 0.0, 1.0)
    assert d.shape == (1, 1, 1, 1)
    assert float(d) == pytest.approx((0.5 * 0.1 + 1.0 * 0.1) / 2.3, abs=1e-12)
    soft = torch.softmax(logits.flatten(), 0) @ torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert float(soft) == pytest.approx(0.1352, abs=1e-4) and float(d) == pytest.approx(0.0652, abs=1e-4)  # no softmax
    # non-positive logits: uniform weights -> the mean bin value, (0.001 + 10) / 2 for Probe3D's bins
    flat = -torch.rand(2, 256, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(bins_to_depth(flat), torch.full((2, 1, 3, 3), (1e-3 + 10) / 2, dtype=torch.float64))
    # one dominant logit: the weighted value tends to that bin's value; exact weights by hand
    big = torch.zeros(1, 256, 1, 1, dtype=torch.float64)
    big[0, 100] = 1e3
    b = depth_bins().double()
    expected = (1e3 * b[100] + 0.1 * b.sum()) / (1e3 + 25.6)
    assert float(bins_to_depth(big)) == pytest.approx(float(expected), abs=1e-10)
    big[0, 100] = 1e9
    assert float(bins_to_depth(big)) == pytest.approx(float(b[100]), abs=1e-6)


def test_uncertainty_loss_by_hand():
    assert float(kappa_from_raw(torch.tensor(0.0))) == pytest.approx(1.01)
    assert float(kappa_from_raw(torch.tensor(1.0))) == pytest.approx(2.01)
    assert float(kappa_from_raw(torch.tensor(-50.0, dtype=torch.float64))) == pytest.approx(0.01, abs=1e-12)
    # pixel 0: angle 60 degrees, kappa 2; pixel 1: angle 0, kappa 0.5; pixel 2 invalid
    a = math.radians(60)
    pred = torch.tensor([[3 * math.sin(a), 0.0, 3 * math.cos(a), 2.0],
                         [0.0, 0.0, 0.2, 0.5],
                         [1.0, 0.0, 0.0, 7.0]], dtype=torch.float64).T.reshape(1, 4, 1, 3)
    gt = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)[None, :, None, None].repeat(1, 1, 1, 3)
    valid = torch.tensor([[[True, True, False]]])
    nll0 = math.log(1 + math.exp(-2 * math.pi)) - math.log(1 + 4) + 2 * a
    nll1 = math.log(1 + math.exp(-0.5 * math.pi)) - math.log(1 + 0.25) + 0.5 * math.acos(1 - 1e-4)
    loss = float(uncertainty_angular_loss(pred, gt, valid))
    assert loss == pytest.approx((nll0 + nll1) / 2, abs=1e-9)
    assert float(uncertainty_nll(torch.tensor(a), torch.tensor(2.0))) == pytest.approx(nll0, abs=1e-6)
    plain = float(angular_loss(pred[:, :3], gt, valid))
    assert plain == pytest.approx(a / 2, abs=1e-3) and abs(loss - plain) > 0.2


def _rcu(x, unit):
    c1, c2 = unit.body[0], unit.body[2]
    pad = c1.kernel_size[0] // 2
    return x + F.relu(F.conv2d(F.relu(F.conv2d(x, c1.weight, c1.bias, padding=pad)), c2.weight, c2.bias, padding=pad))


def _reference(head, feats, size):
    """Probe3D's DPT written out: separate 1x1 convs on 4 block tensors, fusion ref_3 .. ref_0."""
    up = lambda x, s: F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=True)  # noqa: E731
    w, b = head.reassemble.weight, head.reassemble.bias
    hid = w.shape[0] // 4
    blocks = feats.chunk(4, 1)
    xs = [up(F.conv2d(f, w[i * hid:(i + 1) * hid], b[i * hid:(i + 1) * hid]), 2) for i, f in enumerate(blocks)]
    out = _rcu(xs[3], head.fusion[3].unit)
    for i in (2, 1, 0):
        out = _rcu(_rcu(xs[i], head.fusion[i].skip_unit) + out, head.fusion[i].unit)
    c1, c2 = head.out_conv[0], head.out_conv[2]
    out = up(F.conv2d(F.relu(F.conv2d(up(out, 4), c1.weight, c1.bias, padding=1)), c2.weight, c2.bias, padding=1), 2)
    if head.task == "depth":
        return F.interpolate(bins_to_depth(out), size=size, mode="bilinear", align_corners=True)
    out = F.interpolate(out, size=size, mode="bicubic", align_corners=True)
    return torch.cat([out[:, :3], F.elu(out[:, 3:]) + 1.01], 1)


@pytest.mark.parametrize("task,channels", [("depth", 1), ("normals", 4)])
def test_dpt_head_shapes_structure_and_block_groups(task, channels):
    torch.manual_seed(0)
    head = DPTDenseHead(4 * 6, 4, task, hidden_dim=8).double()
    feats = torch.randn(2, 24, 3, 5, dtype=torch.float64)
    out = head(feats, (13, 17))
    assert out.shape == (2, channels, 13, 17)
    torch.testing.assert_close(out, _reference(head, feats, (13, 17)))
    assert head.fusion[-1].skip_unit is None and all(f.skip_unit is not None for f in head.fusion[:-1])
    if task == "depth":
        assert out.min() > 1e-3 and out.max() < 10.0
    else:
        assert out[:, 3].min() > 0.01
    for g in range(4):  # every block group changes the output
        moved = feats.clone()
        moved[:, 6 * g:6 * (g + 1)] += 1.0
        assert (head(moved, (13, 17)) - out).abs().max() > 1e-6, g
    # predictions follow the head: depth as output (no second activation), unit normals without kappa
    pred = predict_dense(head.float(), feats.float(), (13, 17), task)
    if task == "depth":
        torch.testing.assert_close(pred, out.float(), rtol=1e-4, atol=1e-5)
    else:
        assert pred.shape == (2, 3, 13, 17)
        torch.testing.assert_close(pred, F.normalize(out[:, :3].float(), dim=1), rtol=1e-4, atol=1e-5)


def test_dpt_losses_follow_the_head():
    torch.manual_seed(0)
    depth_head = make_head("dpt", 8, "depth", 2, hidden_dim=4)
    pred = depth_head(torch.randn(2, 8, 2, 2), (6, 6))
    gt = torch.rand(2, 1, 6, 6) * 3 + 0.5
    want = 10 * silog_loss(pred, gt, gt > 0) + 0.5 * gradient_loss(pred, gt, gt > 0)
    torch.testing.assert_close(dense._loss(depth_head, "depth", pred, gt, None), want)
    normal_head = make_head("dpt", 8, "normals", 2, hidden_dim=4)
    out = normal_head(torch.randn(2, 8, 2, 2), (6, 6))
    gt = F.normalize(torch.randn(2, 3, 6, 6), dim=1)
    valid = torch.rand(2, 1, 6, 6) > 0.3
    torch.testing.assert_close(dense._loss(normal_head, "normals", out, gt, valid),
                               uncertainty_angular_loss(out, gt, valid[:, 0]))


def test_dpt_errors_name_the_config_key():
    with pytest.raises(ValueError, match=r"evaluation\.dense\.head"):
        make_head("dpt", 8, "depth")  # num_blocks = 1
    with pytest.raises(ValueError, match=r"evaluation\.dense\.head.*10 channels.*num_blocks=4"):
        make_head("dpt", 10, "depth", 4)
    feats, targets = torch.randn(2, 8, 2, 2), torch.rand(2, 1, 4, 4) + 0.5
    with pytest.raises(ValueError, match=r"evaluation\.dense\.head"):
        train_dense_probe(feats, targets, "depth", head="dpt")
    with pytest.raises(ValueError, match=r"evaluation\.dense\.head"):
        evaluate_dense_probe(feats, targets, feats, targets, "depth", head="dpt", num_blocks=3)
    assert isinstance(make_head("linear", 8, "depth", 3), dense.LinearDenseHead)  # linear ignores num_blocks


def _synthetic(n, seed, task, grid=4):
    # 4 "blocks" of 2 channels; the target depends on blocks 0 and 3
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 8, grid, grid, generator=g)
    up = F.interpolate(feats, size=(8, 8), mode="bilinear", align_corners=False)
    if task == "depth":
        return feats, torch.exp(0.4 * up[:, :1] + 0.2 * up[:, 6:7] + 0.5)
    return feats, torch.stack([up[:, 0], up[:, 7], up[:, 1].abs() + 1.0], 1)


def test_dpt_probe_learns_depth():
    # a 2x2 grid keeps the 256-bin output small (32x32) for the CPU
    trf, trt = _synthetic(32, 0, "depth", grid=2)
    tef, tet = _synthetic(8, 1, "depth", grid=2)
    torch.manual_seed(0)  # the initial head of train_dense_probe(seed=0)
    init = make_head("dpt", 8, "depth", 4, hidden_dim=16)
    model = train_dense_probe(trf, trt, "depth", head="dpt", num_blocks=4, hidden_dim=16, lr=3e-3, batch_size=8,
                              epochs=20)
    with torch.no_grad():
        before, after = (float(dense._loss(m, "depth", m(trf, (8, 8)), trt, None)) for m in (init, model))
    assert after < 0.5 * before, (before, after)
    m = depth_metrics(predict_dense(model, tef, (8, 8), "depth"), tet)
    assert m["rel_delta1"] > 0.95 and m["abs_delta1"] > 0.9, m  # a constant median prediction: 0.33


def test_dpt_probe_learns_normals():
    trf, trt = _synthetic(32, 0, "normals")
    tef, tet = _synthetic(8, 1, "normals")
    m = evaluate_dense_probe(trf, trt, tef, tet, "normals", head="dpt", num_blocks=4, hidden_dim=16, lr=2e-3,
                             epochs=30, batch_size=8)
    assert m["frac_under_11.25"] > 0.5 and m["frac_under_30"] > 0.9, m
