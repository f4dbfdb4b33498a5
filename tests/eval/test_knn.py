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


def test_knn_protocols_differ_where_cosine_and_euclidean_neighbours_differ():
    # bank: label 0 points the query's way but far out; label 1 lies close but at an angle
    bank = torch.tensor([[10.0, 0.0], [20.0, 0.0], [1.0, 0.6], [0.9, -0.6]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    kw = dict(k=2, num_classes=2)
    assert knn_predict(bank, labels, query, protocol="dinov2", **kw).tolist() == [0]  # cosine 1.0, 1.0
    assert knn_predict(bank, labels, query, protocol="aloe_code", **kw).tolist() == [1]  # distances 0.6, 0.61


def test_knn_aloe_code_votes_unweighted_dinov2_weighted():
    # cosine neighbours of the query (k=3): one very close of label 0, two farther of label 1
    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[1.0, 0.0]])
    # weighted: exp(1/0.07) > 2 exp(0.8/0.07), label 0 wins; a majority of the same 3 neighbours: label 1
    assert knn_predict(bank, labels, query, k=3, temperature=0.07, num_classes=2).tolist() == [0]
    assert knn_predict(bank, labels, query, k=3, num_classes=2, protocol="aloe_code").tolist() == [1]
    # with a flat temperature the weighted vote turns into the majority too
    assert knn_predict(bank, labels, query, k=3, temperature=100.0, num_classes=2).tolist() == [1]


def test_knn_aloe_code_equals_sklearn_kneighbors_with_tiny_chunks():
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(2)
    bank = torch.randn(300, 16, generator=g, dtype=torch.float64) * torch.rand(300, 1, generator=g,
                                                                                 dtype=torch.float64) * 5
    labels = torch.randint(0, 7, (300,), generator=g)
    queries = torch.randn(57, 16, generator=g, dtype=torch.float64) * 3
    expected = torch.from_numpy(KNeighborsClassifier(n_neighbors=20).fit(bank.numpy(), labels.numpy())
                                .predict(queries.numpy()))
    for qc, bc in [(8, 13), (1000, 1000)]:
        pred = knn_predict(bank, labels, queries, k=20, num_classes=7, query_chunk=qc, bank_chunk=bc,
                           dtype=torch.float64, protocol="aloe_code")
        assert torch.equal(pred, expected.long())
    # and it is another classifier than the cosine-weighted one on this data
    assert not torch.equal(pred, _direct(bank, labels, queries, 20, 0.07, 7))
