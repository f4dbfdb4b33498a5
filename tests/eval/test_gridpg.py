import pytest
import torch

from aloe.eval.gridpg import cell_scores, confident_correct, evaluate_gridpg, gridpg, make_grids
from aloe.records import NotEnoughData

K = 5  # classes; an image of class k lights channel k


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % K
    strength = torch.rand(n, generator=g) * 2
    images = torch.zeros(n, K, 8, 8)
    images[torch.arange(n), labels] = strength[:, None, None]
    return images, labels, strength


def classifier(x):  # linear: logits = 4 * per-channel mean
    return 4 * x.mean(dim=(2, 3))


def input_x_gradient(grids, classes):  # exact input x gradient of `classifier` for the class
    return grids[torch.arange(len(classes)), classes] * 4 / grids[0, 0].numel()


def test_confident_correct_threshold():
    images, labels, strength = _data()
    keep = confident_correct(classifier, images, labels, threshold=0.6)
    conf = torch.exp(4 * strength) / (torch.exp(4 * strength) + K - 1)
    assert keep.tolist() == (conf >= 0.6).nonzero().flatten().tolist()


def test_grids_have_distinct_confident_classes():
    images, labels, _ = _data()
    cand = confident_correct(classifier, images, labels, threshold=0.5)
    grids, cls = make_grids(images, labels, cand, num_grids=6, seed=1)
    assert grids.shape == (6, K, 16, 16)
    for g, c in zip(grids, cls):
        assert len(set(c.tolist())) == 4
        for cell, (r, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            patch = g[:, r * 8 : r * 8 + 8, col * 8 : col * 8 + 8]
            assert patch[c[cell]].min() > 0 and patch.sum() == patch[c[cell]].sum()
    with pytest.raises(NotEnoughData, match=">= 4 classes; found 3 class") as err:
        make_grids(images, labels, torch.tensor([0, 1, 2, 5]), num_grids=1)
    # labels 0, 1, 2, 0: class 0 twice, class 3 and 4 none (all classes of the data are counted)
    assert err.value.counts == {"classes_needed": 4, "classes_found": 3, "confident_images": 4, "images": 40,
                                "confident_per_class": {"0": 2, "1": 1, "2": 1, "3": 0, "4": 0}}


def test_too_few_confident_classes_is_unavailable_not_an_error():
    images, labels, strength = _data()
    # only class-0 and class-1 images are strong enough: 2 classes pass the threshold
    images[labels >= 2] *= 0.0
    with pytest.raises(NotEnoughData) as err:
        evaluate_gridpg(classifier, input_x_gradient, images, labels, threshold=0.3, num_grids=5)
    conf = torch.exp(4 * strength) / (torch.exp(4 * strength) + K - 1)
    want = {str(k): int(((labels == k) & (conf >= 0.3) & (labels < 2)).sum()) for k in range(K)}
    assert err.value.counts["confident_per_class"] == want and err.value.counts["threshold"] == 0.3
    assert err.value.counts["classes_found"] == sum(n > 0 for n in want.values()) == 2
    assert "at confidence threshold 0.3" in err.value.reason and "class 0: " in err.value.reason


def test_all_zero_mass_scores_zero():
    images, labels, _ = _data()
    grids, cls = make_grids(images, labels, torch.arange(40), num_grids=3)
    r = gridpg(lambda x, c: -input_x_gradient(x, c), grids, cls)
    assert (r.mean, r.count, r.zero_mass, r.num_grids) == (0.0, 12, 12, 3)


def test_score_one_for_confined_and_quarter_for_uniform():
    images, labels, _ = _data()
    r = evaluate_gridpg(classifier, input_x_gradient, images, labels, threshold=0.5, num_grids=5)
    assert r.mean == pytest.approx(1.0) and r.count == 20 and r.zero_mass == 0
    uni = evaluate_gridpg(classifier, lambda x, c: torch.ones(x.shape[0], 3, 16, 16), images, labels, num_grids=5)
    assert uni.mean == pytest.approx(0.25)


def test_zero_mass_cells_score_zero_and_are_counted():
    images, labels, _ = _data()
    grids, cls = make_grids(images, labels, torch.arange(40), num_grids=3)

    calls = []

    def half_negative(x, c):  # gridpg asks for cells 0..3 in order; cells 2 and 3 get negative maps
        calls.append(c)
        m = input_x_gradient(x, c)
        return m if len(calls) <= 2 else -m

    r = gridpg(half_negative, grids, cls)
    # 6 cells at 1.0 and 6 zero-mass cells at 0 (skipping them would report 1.0)
    assert r.count == 12 and r.zero_mass == 6 and r.mean == pytest.approx(0.5)
    assert [c.tolist() for c in calls] == cls.T.tolist()


def test_cell_scores_partial():
    a = torch.zeros(1, 4, 4)
    a[0, 0, 0] = 3.0  # top-left
    a[0, 3, 3] = 1.0  # bottom-right
    a[0, 0, 3] = -5.0  # negative mass is ignored
    torch.testing.assert_close(cell_scores(a), torch.tensor([[0.75, 0.0, 0.0, 0.25]], dtype=torch.float64))


def test_every_compared_model_is_scored_on_one_grid_set():
    images, labels, strength = _data()
    # a second model that is never confident on the first half of the images
    other = lambda x: classifier(x) * (x.flatten(1).amax(1, keepdim=True) > 0).float()  # noqa: E731
    first_half = torch.arange(40) < 20

    def picky(x):  # confident_correct scores the 40 images in one batch (of 64)
        assert x.shape[0] == 40
        return torch.where(first_half[:, None], torch.zeros(40, K), classifier(x))

    cand = confident_correct(classifier, images, labels, threshold=0.5)
    assert (cand < 20).any()
    alone = evaluate_gridpg(classifier, input_x_gradient, images, labels, num_grids=5)
    shared = evaluate_gridpg(classifier, input_x_gradient, images, labels, num_grids=5, gate=[picky])
    # the other side of the comparison sees the same grid set: same candidates, same digest
    mirrored = evaluate_gridpg(picky, input_x_gradient, images, labels, num_grids=5, gate=[classifier])
    assert shared.grid_set == mirrored.grid_set != alone.grid_set
    assert shared.candidates == mirrored.candidates == int((cand >= 20).sum()) < alone.candidates
    assert evaluate_gridpg(classifier, input_x_gradient, images, labels, num_grids=5, gate=[other]).grid_set \
        == alone.grid_set  # a gate that agrees changes nothing
    assert len(alone.grid_set) == 16 and alone.candidates == cand.numel()
    with pytest.raises(NotEnoughData) as err:  # nobody is confident on everything: a clear n/a
        evaluate_gridpg(classifier, input_x_gradient, images, labels, num_grids=5,
                        gate=[lambda x: torch.zeros(x.shape[0], K)])
    assert err.value.counts["compared_classifiers"] == 2 and err.value.counts["confident_images"] == 0
