"""Linear-probe head files as objects (``aloe.load_head``): tensors, kind, class names, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from aloe import load_head
from aloe.eval.classifier import load_head as classifier_head
from aloe.models.heads import LinearHead, head_metadata
from aloe.tensorfile import save_tensors


def _save(path, weight, bias, **meta):
    save_tensors(path, {"weight": weight, "bias": bias}, metadata={k: str(v) for k, v in meta.items()})
    return path


def test_head_file_round_trip_and_the_classifiers_view(tmp_path):
    weight, bias = torch.randn(8, 3), torch.randn(3)
    meta = head_metadata("abc", "shapes", "bcos", ["circle", "square", "star"])
    assert json.loads(meta["classes"]) == ["circle", "square", "star"] and meta["head"] == "bcos"
    save_tensors(tmp_path / "h.safetensors", {"weight": weight, "bias": bias}, metadata=meta)
    head = load_head(tmp_path / "h.safetensors")
    assert isinstance(head, LinearHead) and head.kind == "bcos" and head.backbone_checksum == "abc"
    assert head.classes == ["circle", "square", "star"] and (head.in_features, head.num_classes) == (8, 3)
    assert torch.equal(head.weight, weight) and torch.equal(head.bias, bias)
    plain = load_head(_save(tmp_path / "plain.safetensors", weight, bias))
    assert plain.kind == "linear" and plain.classes is None and plain.backbone_checksum is None
    pooled = torch.randn(4, 8)
    torch.testing.assert_close(plain.logits(pooled), pooled @ weight + bias)
    torch.testing.assert_close(plain.class_scores(pooled, [2, 0, 1, 1]), (pooled @ weight)[range(4), [2, 0, 1, 1]])
    backbone = tmp_path / "backbone"
    save_tensors(backbone / "model.safetensors", {"w": torch.ones(2)})
    with pytest.raises(ValueError, match="trained on features of another backbone"):
        classifier_head(tmp_path / "h.safetensors", backbone)


def test_bad_head_files_are_named(tmp_path):
    good = _save(tmp_path / "good.safetensors", torch.randn(8, 3), torch.randn(3))
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="cut.safetensors is truncated"):
        load_head(tmp_path / "cut.safetensors")
    save_tensors(tmp_path / "nobias.safetensors", {"weight": torch.randn(8, 3)})
    with pytest.raises(ValueError, match=r"nobias.safetensors lacks tensors \['bias'\]"):
        load_head(tmp_path / "nobias.safetensors")
    with pytest.raises(ValueError, match=r"weight must be \(D, C\) and bias \(C,\), got \(8, 3\), \(4,\)"):
        load_head(_save(tmp_path / "shape.safetensors", torch.randn(8, 3), torch.randn(4)))
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        load_head(_save(tmp_path / "names.safetensors", torch.randn(8, 3), torch.randn(3), classes='["a", "b"]'))
    with pytest.raises(ValueError, match="'classes' is not JSON"):
        load_head(_save(tmp_path / "json.safetensors", torch.randn(8, 3), torch.randn(3), classes="[a"))
    with pytest.raises(ValueError, match="kind must be one of"):
        load_head(_save(tmp_path / "kind.safetensors", torch.randn(8, 3), torch.randn(3), head="mlp"))
