import pytest
import torch

from aloe.eval.deletion import block_ranking, deletion_curve, deletion_fractions


def region_model(x):
    """Class-0 logit is the sum of the top-left 32x32 region; class 1 is a constant."""
    s = x[:, :, :32, :32].sum(dim=(1, 2, 3)) / 500.0
    return torch.stack([s, torch.full_like(s, 2.0)], dim=1)


def test_deletion_monotone_and_faithful_order():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 64, 64, generator=g)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :32, :32] = 1
    target = torch.zeros(3, dtype=torch.long)
    good = deletion_curve(region_model, x, target, x * mask, block=16)
    assert good.fractions == pytest.approx([0.1 * i for i in range(9)])
    # 16 blocks, the region is 4 of them: 0, 2, 3 region blocks gone at f = 0, 0.1, 0.2, all from 0.3
    assert good.curve[0] > good.curve[1] > good.curve[2] > good.curve[3]
    assert good.curve[3:] == pytest.approx([good.curve[3]] * 6)
    assert good.curve[-1] == pytest.approx(float(torch.softmax(torch.tensor([0.0, 2.0]), 0)[0]))
    # random ranking: still monotone (only positive pixels are removed) but slower to fall
    rnd = deletion_curve(region_model, x, target, torch.rand(3, 64, 64, generator=g), block=16)
    assert all(a >= b for a, b in zip(rnd.curve, rnd.curve[1:]))
    assert good.area < rnd.area
    # starting point: the unmodified images
    p0 = torch.softmax(region_model(x), 1)[:, 0].mean()
    assert good.curve[0] == pytest.approx(float(p0))


def test_block_ranking_and_fraction_checks():
    a = torch.zeros(1, 4, 4)
    a[0, 2:, :2] = 1.0  # block 2 (row 1, col 0) strongest
    a[0, :2, 2:] = 0.5  # block 1 next
    assert block_ranking(a, 2)[0, :2].tolist() == [2, 1]
    with pytest.raises(ValueError, match="multiple of block"):
        block_ranking(torch.zeros(1, 5, 5), 2)
    with pytest.raises(ValueError, match="increasing"):
        deletion_curve(region_model, torch.rand(1, 3, 64, 64), torch.zeros(1), torch.rand(1, 64, 64),
                       fractions=[0.5, 0.1])
    assert deletion_fractions(0.8, 5) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
