"""Feature cache: one fp16 safetensors file per (backbone, dataset, split), with provenance.

Features are computed once from a frozen backbone and then read by the linear probe, k-NN and
the dense probes. The provenance record (stored in the safetensors metadata) names the backbone
checksum, dataset, split, preprocessing and feature layout; loading with a different expectation
is refused, so a stale cache is never silently reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from safetensors import safe_open

from aloe.progress import Progress
from aloe.records import code_version
from aloe.tensorfile import save_tensors, state_checksum

# Provenance keys compared on load. code_version is recorded but not compared, so a cache
# survives commits that do not touch the backbone or the feature layout.
CHECKED_KEYS = ("backbone_checksum", "dataset", "split", "preprocessing", "feature_spec")


class ProvenanceMismatchError(ValueError):
    """A cached feature file was made from another backbone, dataset, split or layout."""


class NonFiniteFeaturesError(ValueError):
    """Features contain NaN or inf; ``indices`` lists the offending samples."""

    def __init__(self, name: str, indices: list[int], where: str):
        self.indices = indices
        shown = ", ".join(map(str, indices[:20])) + (" ..." if len(indices) > 20 else "")
        super().__init__(
            f"{len(indices)} sample(s) have NaN/inf in feature {name!r} ({where}); "
            f"sample indices: {shown}"
        )


def feature_spec(last_n: int = 1, avgpool: bool = False, patch_blocks: Sequence[int] = ()) -> dict:
    """The layout of the global feature and the stored patch blocks (part of the provenance)."""
    if last_n < 1:
        raise ValueError(f"last_n must be >= 1, got {last_n}")
    return {"last_n": int(last_n), "avgpool": bool(avgpool), "patch_blocks": [int(b) for b in patch_blocks]}


def _global_feature(backbone: Any, out: Any, num_prefix: int, last_n: int, avgpool: bool) -> torch.Tensor:
    """DINOv2's linear-evaluation input (``create_linear_input`` in its eval/linear.py) for the
    largest layout: the class tokens of the last ``last_n`` blocks, earliest first, each through
    the backbone's final norm (the last one is ``pooler_output``), then, with ``avgpool``, the mean
    of the last block's normed patch tokens. Every smaller layout is a slice (``layout_slice``).
    hidden_states are taken before the final norm (foundation contract)."""
    parts = []
    if last_n > 1:
        if num_prefix == 0:
            raise ValueError("last_n > 1 needs a CLS token; this backbone has num_prefix_tokens=0")
        if last_n > len(out.hidden_states) - 1:
            raise ValueError(f"last_n={last_n} blocks asked of a backbone with {len(out.hidden_states) - 1} blocks")
        norm = backbone.final_norm
        parts += [norm(h[:, 0]) for h in out.hidden_states[-last_n:-1]]
    parts.append(out.pooler_output)
    if avgpool:
        parts.append(out.last_hidden_state[:, num_prefix:].mean(dim=1))
    return torch.cat(parts, dim=-1)


def layout_slice(spec: Mapping[str, Any], n_blocks: int, avgpool: bool, dim: int) -> list[int]:
    """Columns of a cache's global feature (``spec``: its feature_spec, ``dim``: its width) that
    hold layout (n_blocks, avgpool): the class tokens of the last n_blocks blocks, plus the mean
    patch token. Layout (1, False) is ``pooler_output``."""
    parts = spec["last_n"] + int(spec["avgpool"])
    if dim % parts:
        raise ValueError(f"global feature width {dim} is not {parts} equal parts (feature_spec {dict(spec)})")
    if not 1 <= n_blocks <= spec["last_n"] or (avgpool and not spec["avgpool"]):
        raise ValueError(f"layout ({n_blocks} blocks, avgpool={avgpool}) is not in a cache of {dict(spec)}")
    d, last = dim // parts, spec["last_n"]
    cols = list(range((last - n_blocks) * d, last * d))
    return cols + (list(range(last * d, (last + 1) * d)) if avgpool else [])


def pooled_feature(features: Mapping[str, Any], spec: Mapping[str, Any]) -> torch.Tensor:
    """The (N, D) ``pooler_output`` part of a cache's global feature: what k-NN and the aloe_code
    probe read, and what the explanation classifier's head sees."""
    x = features["global"]
    cols = layout_slice(spec, 1, False, x.shape[1])
    return x[:, cols[0] : cols[-1] + 1]


def _patch_grid(backbone: Any, pixels: torch.Tensor, n_patches: int) -> tuple[int, int]:
    patch = getattr(backbone, "patch_size", None)
    if patch:
        h, w = pixels.shape[-2] // patch, pixels.shape[-1] // patch
    else:
        h = w = int(round(n_patches**0.5))
    if h * w != n_patches:
        raise ValueError(f"cannot lay {n_patches} patch tokens on a {h}x{w} grid")
    return h, w


def _unpack(batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[str] | None]:
    """(pixels, targets, keys) from a (pixels, labels[, keys]) tuple or an aloe.data DenseBatch."""
    if hasattr(batch, "depth"):  # dense batch: depth (N, S, S) and normal (N, 3, S, S) targets
        targets = {"depth": batch.depth.float()[:, None], "normal": batch.normal.float()}
        return batch.pixels, targets, list(batch.keys)
    pixels, labels = batch[0], batch[1]
    keys = list(batch[2]) if len(batch) > 2 else None
    return pixels, {"labels": torch.as_tensor(labels).long()}, keys


@torch.no_grad()
def extract_features(
    backbone: Any,
    batches: Iterable[Any],
    *,
    last_n: int = 1,
    avgpool: bool = False,
    patch_blocks: Sequence[int] = (),
    device: str | torch.device = "cpu",
    what: str = "features",
) -> dict[str, Any]:
    """Run ``backbone`` over batches and return fp16 features plus the batches' targets.

    Batches are (pixels01, labels) or (pixels01, labels, keys) tuples, or aloe.data
    ``DenseBatch`` (pixels, depth, normal, keys). Returns ``{"global": (N, D'), "labels": (N,)}``
    (or ``"depth"`` (N, 1, S, S) / ``"normal"`` (N, 3, S, S) in fp32 for dense batches), plus
    ``"block{i}": (N, D, h, w)`` for each requested block index i (0-based; block i's output
    is ``hidden_states[i + 1]``, before the final norm, prefix tokens dropped), and
    ``"__keys__"``: the sample keys in order (a list of str) when the batches carry keys. Progress
    lines are logged as ``what`` (out of ``batches.num_samples`` images, when the loader says).
    """
    spec = feature_spec(last_n, avgpool, patch_blocks)
    progress = Progress(what, getattr(batches, "num_samples", None), unit="images")
    num_prefix = int(getattr(backbone, "num_prefix_tokens", 0))
    need_hidden = last_n > 1 or bool(spec["patch_blocks"])
    chunks: dict[str, list[torch.Tensor]] = {"global": []}
    all_keys: list[str] = []
    for batch in batches:
        pixels, targets, keys = _unpack(batch)
        out = backbone(pixels.to(device), output_hidden_states=need_hidden)
        chunks["global"].append(_global_feature(backbone, out, num_prefix, last_n, avgpool).half().cpu())
        for name, t in targets.items():
            chunks.setdefault(name, []).append(t.cpu())
        all_keys.extend(keys or [])
        for b in spec["patch_blocks"]:
            if not 0 <= b < len(out.hidden_states) - 1:
                raise ValueError(f"patch block {b} out of range for {len(out.hidden_states) - 1} blocks")
            tokens = out.hidden_states[b + 1][:, num_prefix:]
            h, w = _patch_grid(backbone, pixels, tokens.shape[1])
            grid = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)
            chunks.setdefault(f"block{b}", []).append(grid.half().cpu())
        progress.update(len(pixels))
    if not chunks["global"]:
        raise ValueError("no batches: the dataset iterable was empty")
    feats: dict[str, Any] = {k: torch.cat(v) for k, v in chunks.items()}
    check_finite(feats, where="after extraction (fp16)")
    if all_keys:
        if len(all_keys) != feats["global"].shape[0]:
            raise ValueError(f"{len(all_keys)} sample keys for {feats['global'].shape[0]} samples")
        feats["__keys__"] = all_keys
    return feats


def check_finite(features: Mapping[str, torch.Tensor], where: str = "") -> None:
    """Raise NonFiniteFeaturesError naming the sample indices with NaN/inf."""
    for name, t in features.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            continue
        bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
        if bad.any():
            raise NonFiniteFeaturesError(name, bad.nonzero().flatten().tolist(), where)


def make_provenance(
    *, backbone_checksum: str, dataset: str, split: str, preprocessing: Mapping[str, Any], spec: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "backbone_checksum": backbone_checksum,
        "dataset": dataset,
        "split": split,
        "preprocessing": dict(preprocessing),
        "feature_spec": dict(spec),
        "code_version": code_version(),
    }


def keys_checksum(keys: Sequence[str]) -> str:
    """sha256 of the ordered sample keys: identifies which samples, in which order, were cached."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def save_features(
    path: str | os.PathLike,
    features: Mapping[str, Any],
    provenance: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write features (checked finite) and provenance atomically to a .safetensors file.

    ``features["__keys__"]`` (sample keys), if present, is stored as its checksum and count;
    ``extra`` (e.g. skipped-sample counts) is stored as JSON metadata, never compared.
    """
    check_finite(features, where=f"before writing {path}")
    tensors = {k: v.contiguous() for k, v in features.items() if k != "__keys__"}
    n = {t.shape[0] for t in tensors.values()}
    if len(n) != 1:
        raise ValueError(f"feature tensors disagree on the number of samples: {sorted(n)}")
    meta = {
        "provenance": json.dumps(dict(provenance), sort_keys=True),
        "num_samples": str(n.pop()),
        "extra": json.dumps(dict(extra or {}), sort_keys=True),
    }
    if "__keys__" in features:
        meta["keys_sha256"] = keys_checksum(features["__keys__"])
    save_tensors(path, tensors, metadata=meta)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    meta = read_metadata(path)
    if "provenance" not in meta:
        raise ProvenanceMismatchError(f"{path} has no provenance record; delete it and recompute")
    return json.loads(meta["provenance"])


def load_features(path: str | os.PathLike, expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Load a cache file after checking its provenance against ``expected``.

    Every key of ``expected`` that is in CHECKED_KEYS must match exactly (values compared
    after a JSON round trip, so tuples equal lists).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature cache {path} does not exist")
    stored = read_provenance(path)
    wanted = json.loads(json.dumps(dict(expected)))
    diffs = [
        f"{k}: cached={stored.get(k)!r} requested={wanted[k]!r}"
        for k in CHECKED_KEYS
        if k in wanted and stored.get(k) != wanted[k]
    ]
    if diffs:
        raise ProvenanceMismatchError(f"feature cache {path} does not match the request: " + "; ".join(diffs))
    with safe_open(str(path), framework="pt") as f:
        feats = {k: f.get_tensor(k) for k in f.keys()}
    check_finite(feats, where=f"in {path}")
    return feats


def cached_features(
    path: str | os.PathLike,
    backbone: Any,
    batches: Iterable[Any],
    *,
    dataset: str,
    split: str,
    preprocessing: Mapping[str, Any],
    last_n: int = 1,
    avgpool: bool = False,
    patch_blocks: Sequence[int] = (),
    device: str | torch.device = "cpu",
    backbone_checksum: str | None = None,
) -> dict[str, torch.Tensor]:
    """Load ``path`` if it exists and matches; otherwise extract, save and return features.

    ``backbone_checksum`` defaults to ``aloe.tensorfile.state_checksum`` of the backbone's state dict
    (the digest a file holding that state would have); pass ``aloe.models.backbones.checkpoint_checksum``
    when the loaded module has parameters the checkpoint does not fix.

    An existing file with a different provenance raises instead of being overwritten. If
    ``batches`` has a ``skipped`` counter (aloe.data loaders), its counts are stored too.
    """
    spec = feature_spec(last_n, avgpool, patch_blocks)
    prov = make_provenance(
        backbone_checksum=backbone_checksum or state_checksum(backbone.state_dict()), dataset=dataset, split=split,
        preprocessing=preprocessing, spec=spec,
    )
    if Path(path).exists():
        return load_features(path, prov)
    feats = extract_features(
        backbone, batches, last_n=last_n, avgpool=avgpool, patch_blocks=patch_blocks, device=device,
        what=f"features {dataset} {split}",
    )
    skipped = getattr(batches, "skipped", None)  # aloe.data loaders count damaged samples
    extra = {"skipped": skipped.as_dict()} if hasattr(skipped, "as_dict") else {}
    if getattr(batches, "class_names", None):  # so that heads trained on it can name their classes
        extra["class_names"] = list(batches.class_names)
    save_features(path, feats, prov, extra=extra)
    feats.pop("__keys__", None)
    return feats
