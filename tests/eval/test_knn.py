import torch

from aloe.eval.knn import knn_predict, knn_top1


def _direct(bank, labels, queries, k, t, c):
    b = torch.nn.functional.normalize(bank.double(), dim=1)
    q = torch.nn.functional.normalize(queries.double(), dim=1)
    sims = q @ b.T
    out = []
    for row in sims:
        order = sorted(range(len(row)), key=lambda j: -float(row[j]))[:k]
        votes = [0.0] * c
        for j in order:
            votes[int(labels[j])] += float(torch.exp(row[j] / t))
        out.append(max(range(c), key=lambda i: votes[i]))
    return torch.tensor(out)


def test_knn_equals_all_pairs_with_tiny_chunks():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(300, 16, generator=g) * torch.rand(300, 1, generator=g) * 5
    labels = torch.randint(0, 7, (300,), generator=g)
    queries = torch.randn(57, 16, generator=g)
    expected = _direct(bank, labels, queries, 20, 0.07, 7)
    for qc, bc in [(8, 13), (1000, 1000), (57, 7)]:
        pred = knn_predict(bank, labels, queries, k=20, temperature=0.07, num_classes=7,
                           query_chunk=qc, bank_chunk=bc, dtype=torch.float64)
        assert torch.equal(pred, expected)
    # fp16 bank, default fp32 compute: same answers on this data
    pred16 = knn_predict(bank.half(), labels, queries.half(), num_classes=7, bank_chunk=50)
    assert (pred16 == expected).float().mean() > 0.95


def test_knn_top1_separable():
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(4, 8, generator=g) * 10
    y = torch.arange(200) % 4
    x = centers[y] + torch.randn(200, 8, generator=g)
    assert knn_top1(x[:150], y[:150], x[150:], y[150:], k=5) == 100.0
