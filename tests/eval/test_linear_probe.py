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


def test_dinov2_default_batch_is_its_global_batch_and_scales_lrs_by_four():
    """DINOv2's launcher: 8 GPUs x 128 = global batch 1024, so each grid LR is multiplied by 1024 / 256 = 4."""
    x, y = _gaussians(1300, 8, 3, 0.5, seed=5)
    r = linear_probe(x[:1200], y[:1200], x[1200:], y[1200:], iterations=5)
    assert r.params["batch_size"] == 1024 and r.params["protocol"] == "dinov2" and r.head == "linear"
    assert sorted(r.val_top1) == pytest.approx([lr * 4.0 for lr in DINOV2_LRS])
    # a smaller train split clamps the batch, and the scale follows the batch used
    small = linear_probe(x[:500], y[:500], x[1200:], y[1200:], iterations=5)
    assert small.params["batch_size"] == 450 and max(small.val_top1) == pytest.approx(0.1 * 450 / 256)


def test_aloe_code_selects_epoch_and_lr_on_the_evaluation_split(monkeypatch):
    import aloe.eval.probe_aloe_code as pac

    x, y = _gaussians(400, 8, 3, 0.5, seed=6)
    xtr, ytr, xte, yte = x[:300], y[:300], x[300:], y[300:]
    seen, scripted = [], iter([10.0, 20.0, 30.0, 40.0, 90.0, 50.0, 60.0, 70.0, 80.0])  # epoch-major, 3 LRs
    real = pac._top1

    def scored(module, xs, ys, chunk=8192):
        seen.append((xs.shape[0], real(module, xs, ys)))
        return next(scripted)

    monkeypatch.setattr(pac, "_top1", scored)
    r = linear_probe(xtr, ytr, xte, yte, protocol="aloe_code", head="linear",
                     aloe_code={"epochs": 3, "batch_size": 64, "lrs": [1e-2, 3e-3, 1e-3], "weight_decay": 1e-4})
    # every score was taken on the 100 evaluation samples (none carved from train), after each epoch for each LR
    assert [n for n, _ in seen] == [100] * 9
    assert r.test_top1 == 90.0 and r.best_lr == 3e-3 and r.params["best_epoch"] == 2
    assert r.params["selected_on"] == "test" and r.val_top1 == {1e-2: 60.0, 3e-3: 90.0, 1e-3: 80.0}
    # the returned head is the one scored there: epoch 2, second LR
    acc = float((r.logits(xte).argmax(1) == yte).float().mean() * 100)
    assert acc == pytest.approx(seen[4][1])


def test_aloe_code_puts_a_bcos_head_on_students():
    from aloe.bcos import BcosLinear
    from aloe.eval.probe_aloe_code import probe_head

    assert probe_head("teacher") == "linear"
    assert probe_head("aloe") == probe_head("bcosification") == probe_head("aloe:loss=mse") == "bcos"
    x, y = _gaussians(600, 16, 4, 0.5, seed=7)
    settings = {"epochs": 20, "batch_size": 128, "lrs": [1e-2], "weight_decay": 1e-4}
    r = linear_probe(x[:500], y[:500], x[500:], y[500:], protocol="aloe_code", head="bcos", aloe_code=settings)
    assert r.head == "bcos" and r.params["head"] == "bcos" and torch.equal(r.bias, torch.zeros(4))
    layer = BcosLinear(16, 4).double()
    with torch.no_grad():
        layer.weight.copy_(r.weight.T.double())
    xt = x[500:].double()
    torch.testing.assert_close(r.logits(x[500:]).double(), layer(xt), rtol=1e-4, atol=1e-4)
    # the B-cos logits are not the linear read-out of the same weights
    assert not torch.allclose(r.logits(x[500:]), x[500:] @ r.weight, rtol=1e-2)
    assert r.test_top1 == pytest.approx(float((layer(xt).argmax(1) == y[500:]).double().mean() * 100))
    assert r.test_top1 > 90.0
    with pytest.raises(ValueError, match="dinov2 protocol trains linear heads"):
        linear_probe(x[:500], y[:500], x[500:], y[500:], head="bcos", iterations=2)


def test_dinov2_layout_grid_reports_the_best_layout_and_keeps_the_pooled_head():
    from aloe.eval.features import feature_spec
    from aloe.eval.linear_probe import cache_layout, linear_probe_layouts, probe_layouts

    # A cache of DINOv2's largest layout: [cls block L-3 .. cls block L (= pooler), mean patch token].
    # The labels live only in the mean patch token, so only the avgpool layouts can learn them.
    g = torch.Generator().manual_seed(0)
    x_avg, y = _gaussians(600, 8, 4, 0.3, seed=1)
    noise = torch.randn(600, 8 * 4, generator=g)
    x = torch.cat([noise, x_avg], dim=1)
    spec = feature_spec(**cache_layout([1, 4], [False, True]))
    assert spec["last_n"] == 4 and spec["avgpool"]
    assert probe_layouts(spec, [1, 4], [False, True]) == [(1, False), (1, True), (4, False), (4, True)]
    best, pooled = linear_probe_layouts(x[:500], y[:500], x[500:], y[500:], spec, iterations=200, batch_size=64)
    assert best.params["best_layout"] in {"last1+avgpool", "last4+avgpool"} and best.test_top1 > 95
    assert best.params["layouts"] == ["last1", "last1+avgpool", "last4", "last4+avgpool"]
    assert set(best.params["val_top1_by_layout"]) == set(best.params["layouts"])
    # the head on pooler_output (layout last1, what the explanations classify with) saw noise only
    assert pooled.weight.shape == (8, 4) and pooled.test_top1 < 50
    # a cache without class tokens beyond the last (SigLIP): the grid shrinks to layout 1
    assert probe_layouts(feature_spec(1, True), [1, 4], [False, True]) == [(1, False), (1, True)]
    with pytest.raises(ValueError, match="n_last_blocks"):
        linear_probe_layouts(x[:500], y[:500], x[500:], y[500:], spec, n_last_blocks=[4], iterations=5)
