import pytest
import torch
from sklearn.linear_model import LogisticRegression

from aloe.eval.linear_probe import DINOV2_LRS, LR_GRIDS, SCALE_LRS_BY_BATCH, linear_probe, lr_grid, split_train_val


def _gaussians(n, d, c, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(c, d, generator=g) * 3
    y = torch.randint(0, c, (n,), generator=g)
    x = centers[y] + spread * torch.randn(n, d, generator=g)
    return x, y


def test_split_is_seeded_and_disjoint():
    a_tr, a_va = split_train_val(100, 0.1, seed=3)
    b_tr, b_va = split_train_val(100, 0.1, seed=3)
    assert torch.equal(a_va, b_va) and len(a_va) == 10 and len(a_tr) == 90
    assert set(a_tr.tolist()).isdisjoint(a_va.tolist())
    assert not torch.equal(split_train_val(100, 0.1, seed=4)[1], a_va)


def test_separable_reaches_100():
    x, y = _gaussians(1200, 32, 10, 0.3, seed=0)
    r = linear_probe(x[:1000].half(), y[:1000], x[1000:].half(), y[1000:], iterations=300, batch_size=128)
    assert r.test_top1 == 100.0
    assert len(r.val_top1) == len(DINOV2_LRS) and r.best_lr in r.val_top1
    assert r.weight.shape == (32, 10) and (r.logits(x[1000:]).argmax(1) == y[1000:]).all()


def test_within_one_point_of_sklearn_on_overlapping_classes():
    x, y = _gaussians(6000, 32, 8, 6.0, seed=1)
    xtr, ytr, xte, yte = x[:5000], y[:5000], x[5000:], y[5000:]
    r = linear_probe(xtr, ytr, xte, yte, iterations=1500, batch_size=128)
    sk = LogisticRegression(max_iter=2000).fit(xtr.numpy(), ytr.numpy())
    sk_acc = 100.0 * (sk.predict(xte.numpy()) == yte.numpy()).mean()
    assert 40.0 < sk_acc < 95.0  # the task is genuinely hard
    assert r.test_top1 >= sk_acc - 1.0, (r.test_top1, sk_acc)
    # the tiny learning rates cannot learn this in 1500 steps: the grid choice matters
    assert min(r.val_top1.values()) < max(r.val_top1.values()) - 10


def test_the_probe_resolves_its_named_grid_itself():
    """config `evaluation.linear_probe.lrs: dinov2` reaches the probe as the name; it is DINOv2's
    13 LRs, scaled by batch / 256 (DINOv2's protocol), the same run as the listed grid."""
    assert lr_grid("dinov2") == DINOV2_LRS == LR_GRIDS["dinov2"] and len(DINOV2_LRS) == 13
    assert lr_grid([0.1, 1.0]) == (0.1, 1.0) and SCALE_LRS_BY_BATCH is True
    with pytest.raises(ValueError, match="evaluation.linear_probe.lrs.*'dinov3'"):
        lr_grid("dinov3")
    x, y = _gaussians(300, 8, 3, 0.5, seed=2)
    named = linear_probe(x[:250], y[:250], x[250:], y[250:], lrs="dinov2", iterations=20, batch_size=64)
    listed = linear_probe(x[:250], y[:250], x[250:], y[250:], lrs=DINOV2_LRS, iterations=20, batch_size=64)
    assert named.params == listed.params and named.params["lrs"] == list(DINOV2_LRS)
    assert named.params["scale_lrs_by_batch"] is True and named.best_lr == listed.best_lr
    assert sorted(named.val_top1) == pytest.approx([lr * 64 / 256 for lr in DINOV2_LRS])
    assert torch.equal(named.weight, listed.weight)
