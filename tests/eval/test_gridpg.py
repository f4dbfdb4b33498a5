import pytest
import torch

from aloe.eval.gridpg import (
    cell_scores, confidence_function, confident_correct, evaluate_gridpg, grid_set_digest, gridpg, make_grids,
    sliding_window_attributions, window_offsets,
)
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


# protocol sliding_window (the ALOE authors'): 2x-native grids, native-size windows of stride half a cell


def test_window_offsets_tile_a_two_cell_axis():
    assert window_offsets(16, 8) == [0, 4, 8] and window_offsets(448, 224) == [0, 112, 224]
    for size, window in ((16, 7), (16, 17), (18, 8)):  # odd window, window > grid, stride does not reach the edge
        with pytest.raises(ValueError, match="do not tile"):
            window_offsets(size, window)


def test_sliding_windows_are_the_nine_native_crops():
    grids = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)  # every pixel distinct
    classes = torch.tensor([1, 2])
    seen = []

    def record(x, c):
        seen.append((x.clone(), c.clone()))
        return torch.zeros(x.shape[0], x.shape[-2], x.shape[-1])

    sliding_window_attributions(record, grids, classes, window=8)
    assert len(seen) == 9
    positions = [(t, left) for t in (0, 4, 8) for left in (0, 4, 8)]
    for (x, c), (t, left) in zip(seen, positions):
        assert x.shape == (2, 3, 8, 8) and c.tolist() == [1, 2]
        assert torch.equal(x, grids[..., t : t + 8, left : left + 8])


def test_overlapping_window_maps_are_averaged():
    grids = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def window_mean(x, c):  # a constant map per window, whose value depends on the window's content
        return x.mean(dim=(1, 2, 3))[:, None, None, None].expand(-1, 3, 8, 8) / 3  # (N, C, h, w): sums to the mean

    avg = sliding_window_attributions(window_mean, grids, torch.tensor([0]), window=8)[0]
    m = {(t, left): float(grids[0, :, t : t + 8, left : left + 8].mean()) for t in (0, 4, 8) for left in (0, 4, 8)}
    assert avg.shape == (16, 16)
    assert float(avg[0, 0]) == pytest.approx(m[0, 0])  # corner: one window
    assert float(avg[0, 5]) == pytest.approx((m[0, 0] + m[0, 4]) / 2)  # top edge: two windows
    assert float(avg[6, 9]) == pytest.approx((m[4, 4] + m[4, 8] + m[0, 4] + m[0, 8]) / 4)  # centre: four windows
    assert float(avg[8, 15]) == pytest.approx((m[4, 8] + m[8, 8]) / 2)  # right edge
    assert float(avg[15, 15]) == pytest.approx(m[8, 8])
    # an average, not a sum: a window-independent map comes back unchanged
    same = sliding_window_attributions(lambda x, c: torch.ones(x.shape[0], 8, 8), grids, torch.tensor([0]), window=8)
    assert torch.equal(same, torch.ones(1, 16, 16))


def present(x, c):  # uniform map wherever class c's channel is in the input at all, else nothing
    return torch.ones(x.shape[0], *x.shape[-2:]) * (x[torch.arange(len(c)), c].amax(dim=(1, 2)) > 0)[:, None, None]


def test_resize_and_sliding_window_give_different_scores():
    """``present`` sees all four classes in a whole grid (uniform map: 0.25 under resize); a window
    sees a cell's class in 4 of the 9 windows, so the averaged map is g(r) g(q) with g = [1, 1, 1/2, 0]
    over the quarter-cell rows/columns r, q from the cell's corner: cell share 4 / 2.5^2 = 0.64."""
    images, labels, _ = _data()
    resize = evaluate_gridpg(classifier, present, images, labels, num_grids=5, grid_size=8)
    sliding = evaluate_gridpg(classifier, present, images, labels, num_grids=5, protocol="sliding_window")
    assert resize.mean == pytest.approx(0.25) and sliding.mean == pytest.approx(0.64)
    assert (resize.protocol, resize.grid_size, resize.windows) == ("resize", 8, 1)
    assert (sliding.protocol, sliding.grid_size, sliding.windows) == ("sliding_window", 16, 9)
    assert sliding.count == 20 and sliding.zero_mass == 0
    # the digest covers the grids scored: the resized grids, the 2x-native ones
    cand = confident_correct(classifier, images, labels)
    for r, size in ((resize, 8), (sliding, None)):
        assert r.grid_set == grid_set_digest(*make_grids(images, labels, cand, num_grids=5, grid_size=size))
    assert resize.grid_set != sliding.grid_set
    # the confined map of the exact input x gradient scores 1 either way
    assert evaluate_gridpg(classifier, input_x_gradient, images, labels, num_grids=5,
                           protocol="sliding_window").mean == pytest.approx(1.0)


def test_sliding_window_refuses_what_it_cannot_do():
    images, labels, _ = _data()
    with pytest.raises(ValueError, match="no grid_size"):
        evaluate_gridpg(classifier, present, images, labels, num_grids=1, grid_size=8, protocol="sliding_window")
    with pytest.raises(ValueError, match="do not tile"):  # 7 px cells: no exact half-cell stride
        evaluate_gridpg(classifier, present, images[..., :7, :7], labels, num_grids=1, protocol="sliding_window")
    with pytest.raises(ValueError, match="protocol must be one of"):
        evaluate_gridpg(classifier, present, images, labels, num_grids=1, protocol="sliding")


class Probed:  # a classifier with a probe head's kind, as aloe.eval.classifier.ProbedClassifier has
    def __init__(self, head):
        self.head = head

    def __call__(self, x):
        return classifier(x)


def test_sliding_window_confidence_is_sigmoid_for_bcos_heads_and_softmax_otherwise():
    images, labels, strength = _data()
    sigmoid = torch.sigmoid(4 * strength) >= 0.95  # the label's logit is 4 * strength, the others 0
    softmax = torch.exp(4 * strength) / (torch.exp(4 * strength) + K - 1) >= 0.95
    assert softmax.sum() < sigmoid.sum() and (softmax <= sigmoid).all()  # the two filters keep different images
    want = {"bcos": sigmoid.nonzero().flatten().tolist(), "linear": softmax.nonzero().flatten().tolist()}
    for head in ("bcos", "linear"):
        assert confidence_function(Probed(head), "head") == ("sigmoid" if head == "bcos" else "softmax")
        assert confident_correct(Probed(head), images, labels, threshold=0.95, confidence="head").tolist() == want[head]
        r = evaluate_gridpg(Probed(head), present, images, labels, threshold=0.95, num_grids=2,
                            protocol="sliding_window")
        assert r.candidates == len(want[head])
        # resize keeps softmax for every head
        assert evaluate_gridpg(Probed(head), present, images, labels, threshold=0.95,
                               num_grids=2).candidates == len(want["linear"])
    assert confidence_function(classifier, "head") == "softmax"  # no head kind: a linear head
    # a B-cos student gated by its linear teacher: the images both keep, each by its own function
    both = evaluate_gridpg(Probed("bcos"), present, images, labels, threshold=0.95, num_grids=2,
                           protocol="sliding_window", gate=[Probed("linear")])
    assert both.candidates == len(want["linear"])
    with pytest.raises(NotEnoughData, match=r"threshold 0.999 \(sigmoid/softmax") as err:
        evaluate_gridpg(Probed("bcos"), present, images, labels, threshold=0.999, num_grids=2,
                        protocol="sliding_window", gate=[Probed("linear")])
    assert err.value.counts["confidence"] == ["sigmoid", "softmax"]
