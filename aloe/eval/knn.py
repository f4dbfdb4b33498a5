"""k-NN classifier on cached features, chunked; two protocols (config ``evaluation.knn.protocol``):

- ``dinov2`` (DINO / DINOv2's KnnModule): cosine similarity of L2-normalised features, top k,
  each neighbour votes exp(sim / T) for its label; argmax of the summed votes.
- ``aloe_code`` (the ALOE authors' released code, scikit-learn's
  ``KNeighborsClassifier(n_neighbors=k)``): Euclidean distance on the raw features, one
  unweighted vote per neighbour; ties go to the smallest label, as there.

Memory stays bounded: the bank is never copied or normalised in full. Each bank chunk is
converted and normalised once, compared with every query chunk, and merged into a running
top-k per query, so peak extra memory is about
query_chunk * bank_chunk * 4 bytes + bank_chunk * D * 4 bytes + Nq * k * 12 bytes.
"""

from __future__ import annotations

import torch

PROTOCOLS = ("dinov2", "aloe_code")


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    query_chunk: int = 1024,
    bank_chunk: int = 65536,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    protocol: str = "dinov2",
) -> torch.Tensor:
    """Predicted labels (Nq,) on the CPU. ``dinov2``: argmax over classes of sum_{top-k cosine}
    exp(sim / T); ``aloe_code``: majority label of the k nearest in Euclidean distance
    (``temperature`` unused).

    Compute runs on ``device`` (default: the bank's); bank chunks are moved there as needed,
    so a CPU bank can serve GPU queries chunk by chunk.
    """
    if bank.ndim != 2 or queries.ndim != 2 or bank.shape[1] != queries.shape[1]:
        raise ValueError(f"bank {tuple(bank.shape)} and queries {tuple(queries.shape)} must be (N, D) with equal D")
    if bank_labels.shape != (bank.shape[0],):
        raise ValueError(f"bank_labels must be ({bank.shape[0]},), got {tuple(bank_labels.shape)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"config key 'evaluation.knn.protocol': {protocol!r} is not one of {PROTOCOLS}")
    euclidean = protocol == "aloe_code"
    k = min(k, bank.shape[0])
    if num_classes is None:
        num_classes = int(bank_labels.max()) + 1
    dev = torch.device(device) if device is not None else bank.device
    labels = bank_labels.long().to(dev)
    nq = queries.shape[0]
    top_s = torch.full((nq, k), -float("inf"), dtype=dtype, device=dev)
    top_i = torch.zeros((nq, k), dtype=torch.long, device=dev)
    # bank chunks outside, query chunks inside: each bank row is converted and normalised once.
    # Euclidean: -||q - b||^2 = 2 q.b - ||b||^2 - ||q||^2 ranks the bank as -||q - b|| does, and
    # ||q||^2 is the same for every neighbour of a query, so the score drops it.
    for bs in range(0, bank.shape[0], bank_chunk):
        b = bank[bs : bs + bank_chunk].to(dev, dtype)
        if euclidean:
            b_sq = b.pow(2).sum(dim=1)
        else:
            b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
        for qs in range(0, nq, query_chunk):
            q = queries[qs : qs + query_chunk].to(dev, dtype)
            if euclidean:
                sims = 2 * (q @ b.T) - b_sq
            else:
                sims = (q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ b.T
            s, i = sims.topk(min(k, sims.shape[1]), dim=1)
            cat_s = torch.cat([top_s[qs : qs + query_chunk], s], 1)
            cat_i = torch.cat([top_i[qs : qs + query_chunk], i + bs], 1)
            best_s, sel = cat_s.topk(k, dim=1)
            top_s[qs : qs + query_chunk], top_i[qs : qs + query_chunk] = best_s, cat_i.gather(1, sel)
    preds = torch.empty(nq, dtype=torch.long)
    for qs in range(0, nq, query_chunk):
        s, i = top_s[qs : qs + query_chunk], top_i[qs : qs + query_chunk]
        votes = torch.zeros(s.shape[0], num_classes, dtype=dtype, device=dev)
        weights = torch.ones_like(s) if euclidean else (s / temperature).exp()
        votes.scatter_add_(1, labels[i], weights)
        preds[qs : qs + s.shape[0]] = votes.argmax(dim=1).cpu()
    return preds


def knn_top1(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, query_labels: torch.Tensor, **kwargs
) -> float:
    """Top-1 accuracy (percent) of ``knn_predict``; keyword args (``protocol`` too) as there."""
    pred = knn_predict(bank, bank_labels, queries, **kwargs)
    return float((pred == query_labels.long().cpu()).float().mean() * 100.0)
