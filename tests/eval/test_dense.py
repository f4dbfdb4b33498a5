import math

import pytest
import torch

from aloe.eval.dense import (
    evaluate_dense_probe, gradient_loss, make_head, probe_lr_factor, silog_loss, to_depth,
)
from aloe.eval.dense_metrics import align_scale_shift, depth_metrics, normal_metrics


def _depth_pair():
    gt = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 1.0], [2.0, 0.0]]])
    pred = torch.tensor([[[2.0, 4.0], [6.0, 8.0]], [[1.0, 2.0], [2.0, 5.0]]])
    return pred, gt


def test_scale_shift_alignment_by_hand():
    pred, gt = _depth_pair()
    aligned = align_scale_shift(pred.double(), gt.double(), gt > 0)
    # image 0: s = 0.5, t = 0; image 1 (points (1,1), (2,1), (2,2)): s = 0.5, t = 0.5
    torch.testing.assert_close(aligned[0], gt[0].double())
    torch.testing.assert_close(aligned[1], torch.tensor([[1.0, 1.5], [1.5, 3.0]], dtype=torch.float64))


def test_depth_metrics_by_hand():
    pred, gt = _depth_pair()
    m = depth_metrics(pred, gt)
    exp = {
        "abs_delta1": 1 / 3, "abs_delta2": 1 / 3, "abs_delta3": 1 / 3,
        "abs_rmse": (math.sqrt(7.5) + math.sqrt(1 / 3)) / 2,
        "rel_delta1": 2 / 3, "rel_delta2": 1.0, "rel_delta3": 1.0,
        "rel_rmse": math.sqrt(1 / 6) / 2,
    }
    assert m.keys() == exp.keys()
    for k, v in exp.items():
        assert m[k] == pytest.approx(v, abs=1e-9), k
    # (N, 1, H, W) input is accepted too
    assert depth_metrics(pred[:, None], gt[:, None]) == m


def test_depth_metrics_reject_empty_image():
    pred, gt = _depth_pair()
    gt[1] = 0
    with pytest.raises(ValueError, match=r"indices \[1\]"):
        depth_metrics(pred, gt)


def test_normal_metrics_by_hand():
    angles = torch.deg2rad(torch.tensor([0.0, 20.0, 25.0, 45.0, 80.0]))
    pred = torch.stack([angles.sin(), torch.zeros(5), angles.cos()]) * 2.0  # non-unit on purpose
    gt = torch.tensor([0.0, 0.0, 1.0])[:, None].repeat(1, 5)
    gt[:, 4] = 0  # invalid pixel
    m = normal_metrics(pred.reshape(1, 3, 1, 5), gt.reshape(1, 3, 1, 5))
    assert m["pct_under_11.25"] == pytest.approx(25.0)
    assert m["pct_under_22.5"] == pytest.approx(50.0)
    assert m["pct_under_30"] == pytest.approx(75.0)
    assert m["rmse_deg"] == pytest.approx(math.sqrt((0 + 400 + 625 + 2025) / 4), abs=1e-6)


def test_losses():
    gt = torch.rand(2, 1, 8, 8) * 5 + 0.5
    valid = gt > 0
    assert gradient_loss(gt * 3.0, gt, valid) < 1e-6  # scale-invariant
    assert gradient_loss(gt + torch.rand_like(gt), gt, valid) > 1e-2
    assert silog_loss(gt, gt, valid) < 1e-3
    assert silog_loss(gt * 2, gt, valid) < silog_loss(gt * torch.rand_like(gt) * 2, gt, valid)
    d = to_depth(torch.tensor([-100.0, 0.0, 100.0]))
    assert d[0] == pytest.approx(1e-3) and d[2] == pytest.approx(10.0) and d[1] == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="dpt"):
        make_head("dpt", 8, "depth")


def _synthetic(n, seed, task):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 8, 4, 4, generator=g)
    up = torch.nn.functional.interpolate(feats, size=(8, 8), mode="bilinear", align_corners=False)
    if task == "depth":
        return feats, torch.exp(0.4 * up[:, :1] + 0.2 * up[:, 1:2] + 0.5)
    return feats, torch.stack([up[:, 0], up[:, 1], up[:, 2].abs() + 1.0], 1)


def test_probe_lr_schedule_values():
    # 10 epochs of 4 steps, 1.5 warm-up epochs (6 steps), cosine to 1 % of the LR at step 40
    f = probe_lr_factor(4, 10, 1.5, 0.01)
    assert [f(0), f(2), f(5)] == [1 / 6, 3 / 6, 1.0]
    assert f(6) == pytest.approx(1.0)
    assert f(23) == pytest.approx(0.01 + 0.99 * 0.5)  # half way through the 34 decay steps
    assert f(40) == pytest.approx(0.01)
    # one epoch: the 6-step warm-up is longer than the 4-step run and never reaches the full LR
    short = probe_lr_factor(4, 1, 1.5, 0.01)
    assert [short(s) for s in range(4)] == [1 / 6, 2 / 6, 3 / 6, 4 / 6]


def test_linear_probe_learns_a_linear_depth_map():
    trf, trt = _synthetic(32, 0, "depth")
    tef, tet = _synthetic(8, 1, "depth")
    m = evaluate_dense_probe(trf, trt, tef, tet, "depth", epochs=40, lr=2e-2, batch_size=8)
    assert m["rel_delta1"] > 0.95 and m["abs_delta1"] > 0.95 and m["abs_rmse"] < 0.2, m


def test_linear_probe_learns_normals():
    trf, trt = _synthetic(32, 0, "normals")
    tef, tet = _synthetic(8, 1, "normals")
    m = evaluate_dense_probe(trf, trt, tef, tet, "normals", epochs=40, lr=2e-2, batch_size=8)
    assert m["pct_under_11.25"] > 60.0, m
