import math

import pytest
import torch

from aloe.eval.dense import (
    GRADIENT_EPS, evaluate_dense_probe, gradient_loss, make_head, probe_lr_factor, silog_loss, to_depth,
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
    assert m["frac_under_11.25"] == pytest.approx(0.25)
    assert m["frac_under_22.5"] == pytest.approx(0.5)
    assert m["frac_under_30"] == pytest.approx(0.75)
    assert m["rmse_deg"] == pytest.approx(math.sqrt((0 + 400 + 625 + 2025) / 4), abs=1e-6)


def _normal_field(angles_deg):
    a = torch.deg2rad(torch.tensor(angles_deg, dtype=torch.float64))
    return torch.stack([a.sin(), torch.zeros_like(a), a.cos()])


def test_normal_metrics_are_per_image_means_on_depth_mask():
    # image 0: one valid pixel (error 0) of four; image 1: four valid pixels (20, 25, 45, 80 degrees)
    pred = torch.stack([_normal_field([0.0, 50.0, 50.0, 50.0]), _normal_field([20.0, 25.0, 45.0, 80.0])])
    gt = _normal_field([0.0] * 4)[None].repeat(2, 1, 1)
    pred, gt = pred.reshape(2, 3, 2, 2), gt.reshape(2, 3, 2, 2)
    depth = torch.tensor([[1.5, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]]).reshape(2, 1, 2, 2)
    m = normal_metrics(pred, gt, depth > 0)
    # per image then averaged: (1 + 0) / 2, (1 + 1/4) / 2, (1 + 2/4) / 2; pooled would give 1/5, 2/5, 3/5
    assert m["frac_under_11.25"] == pytest.approx(0.5)
    assert m["frac_under_22.5"] == pytest.approx(0.625)
    assert m["frac_under_30"] == pytest.approx(0.75)
    assert m["rmse_deg"] == pytest.approx((0 + math.sqrt((400 + 625 + 2025 + 6400) / 4)) / 2, abs=1e-6)
    # the depth, not the normal's length, decides: the 50-degree pixels of image 0 have unit normals
    assert normal_metrics(pred, gt)["frac_under_11.25"] == pytest.approx((1 / 4 + 0) / 2)
    with pytest.raises(ValueError, match=r"indices \[0\]"):
        normal_metrics(pred, gt, depth * torch.tensor([0.0, 1.0])[:, None, None, None])


def test_relative_depth_is_not_clamped():
    # one image, gt (0.3, 0.3, 3) at pred (0, 1, 2): least squares s = 1.35, t = -0.15, the aligned
    # (-0.15, 1.2, 2.55) has a negative value, which counts unclamped (Probe3D)
    pred = torch.tensor([[[0.0, 1.0, 2.0]]])
    gt = torch.tensor([[[0.3, 0.3, 3.0]]])
    torch.testing.assert_close(align_scale_shift(pred.double(), gt.double(), gt > 0),
                               torch.tensor([[[-0.15, 1.2, 2.55]]], dtype=torch.float64))
    m = depth_metrics(pred, gt)
    assert m["rel_rmse"] == pytest.approx(math.sqrt((0.45**2 + 0.9**2 + 0.45**2) / 3), abs=1e-7)  # 0.6364
    assert m["abs_rmse"] == pytest.approx(math.sqrt((0.3**2 + 0.7**2 + 1.0**2) / 3), abs=1e-7)
    # ratios: rel (inf, 4, 1.176), abs (inf, 3.33, 1.5)
    assert [m[f"rel_delta{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 3] * 3)
    assert [m[f"abs_delta{k}"] for k in (1, 2, 3)] == pytest.approx([0, 1 / 3, 1 / 3])


def test_gradient_loss_by_hand():
    def from_residual(r, gt):  # pred with log(pred + eps) - log(gt + eps) == r exactly
        return (gt + GRADIENT_EPS) * torch.exp(r) - GRADIENT_EPS

    # one 13x13 image, residual 1 at (0, 0): differences skip one pixel, so at every stride k the
    # pairs (0,0)-(0,2) and (0,0)-(2,0) of the subsampled map count 1 each, over N valid pixels:
    # k = 1, 2, 4, 6 leave 13, 7, 4, 3 rows -> 2/169 + 2/49 + 2/16 + 2/9
    gt = torch.full((1, 1, 13, 13), 2.0, dtype=torch.float64)
    r = torch.zeros_like(gt)
    r[..., 0, 0] = 1.0
    expected = 2 / 169 + 2 / 49 + 2 / 16 + 2 / 9
    assert float(gradient_loss(from_residual(r, gt), gt)) == pytest.approx(expected, abs=1e-12)
    # two 3x3 images, (0, 2) of the first invalid; N counts the valid pixels of the batch (8 + 9)
    gt = torch.full((2, 1, 3, 3), 1.0, dtype=torch.float64)
    gt[0, 0, 0, 2] = 0.0
    r = torch.zeros_like(gt)
    r[0, 0] = torch.tensor([[0.0, 1.0, 5.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    # rows: |r00 - r02| invalid, |0 - 0|, |3 - 0|; columns: |0 - 3|, |1 - 0|, |r02 - 0| invalid
    pred = from_residual(r, gt)
    assert float(gradient_loss(pred, gt)) == pytest.approx((3 + 3 + 1) / 17, abs=1e-12)
    # the valid argument restricts further: dropping image 1 leaves N = 8
    valid = torch.tensor([True, False])[:, None, None, None].expand_as(gt)
    assert float(gradient_loss(pred, gt, valid)) == pytest.approx(7 / 8, abs=1e-12)


def test_losses():
    gt = torch.rand(2, 1, 8, 8) * 5 + 0.5
    valid = gt > 0
    assert gradient_loss(gt * 3.0, gt, valid) < 4e-3  # scale-invariant up to the eps of log(d + 1e-3)
    assert gradient_loss(gt + torch.rand_like(gt), gt, valid) > 1e-2
    assert silog_loss(gt, gt, valid) < 1e-3
    assert silog_loss(gt * 2, gt, valid) < silog_loss(gt * torch.rand_like(gt) * 2, gt, valid)
    d = to_depth(torch.tensor([-100.0, 0.0, 100.0]))
    assert d[0] == pytest.approx(1e-3) and d[2] == pytest.approx(10.0) and d[1] == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match=r"evaluation\.dense\.head"):  # dpt needs >= 2 blocks
        make_head("dpt", 8, "depth")
    with pytest.raises(ValueError, match="not implemented"):
        make_head("multiscale", 8, "depth")


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
    assert m["frac_under_11.25"] > 0.6, m
