import pytest
import torch

from aloe.eval.features import (
    NonFiniteFeaturesError, ProvenanceMismatchError, cached_features, check_finite, extract_features,
    feature_spec, layout_slice, load_features, make_provenance, pooled_feature, read_provenance, save_features,
)
from aloe.tensorfile import state_checksum


def _batches(n=10, bs=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    y = torch.arange(n) % 3
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)], x, y


def test_extract_matches_backbone_and_layout(tiny_teacher):
    batches, x, y = _batches()
    batches = [(px, lab, [f"k{i}-{j}" for j in range(len(lab))]) for i, (px, lab) in enumerate(batches)]
    norm = tiny_teacher.final_norm
    assert norm is tiny_teacher.hf_model.norm  # DINOv3's final norm, by name
    with torch.no_grad():  # an affine final norm: DINOv2 puts earlier class tokens through it, not a plain LN
        norm.weight.copy_(torch.linspace(0.5, 2.0, 32))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 32))
    f = extract_features(tiny_teacher, batches, last_n=2, avgpool=True, patch_blocks=[0, 1])
    with torch.no_grad():
        out = tiny_teacher(x, output_hidden_states=True)
        torch.testing.assert_close(norm(out.hidden_states[-1][:, 0]), out.pooler_output)
        cls0 = norm(out.hidden_states[1][:, 0])  # block 0 of 2: the earlier of the last two
    p = tiny_teacher.num_prefix_tokens
    assert p == 3  # CLS + 2 registers
    assert f["global"].dtype == torch.float16 and f["global"].shape == (10, 32 * 3)
    assert torch.equal(f["labels"], y) and f["__keys__"][:5] == ["k0-0", "k0-1", "k0-2", "k0-3", "k1-0"]
    # DINOv2's create_linear_input order: class tokens earliest first, then the mean patch token
    torch.testing.assert_close(f["global"][:, :32].float(), cls0, atol=5e-3, rtol=2e-3)
    torch.testing.assert_close(f["global"][:, 32:64].float(), out.pooler_output, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(f["global"][:, 64:].float(), out.last_hidden_state[:, p:].mean(1), atol=2e-3, rtol=2e-3)
    spec = feature_spec(2, True)
    assert layout_slice(spec, 1, False, 96) == list(range(32, 64))
    assert layout_slice(spec, 2, False, 96) == list(range(0, 64))
    assert layout_slice(spec, 1, True, 96) == list(range(32, 96))
    assert layout_slice(spec, 2, True, 96) == list(range(96))
    torch.testing.assert_close(pooled_feature(f, spec).float(), out.pooler_output, atol=2e-3, rtol=2e-3)
    with pytest.raises(ValueError, match="not in a cache"):
        layout_slice(feature_spec(1, False), 2, False, 32)
    with pytest.raises(ValueError, match="last_n=3 blocks asked of a backbone with 2 blocks"):
        extract_features(tiny_teacher, batches, last_n=3)  # hidden_states[-3:-1] would take the embedding output
    # block 1 = hidden_states[2]; token p + (r * 4 + c) is patch (r, c)
    assert f["block1"].shape == (10, 32, 4, 4)
    expected = out.hidden_states[2][3, p + 2 * 4 + 1]
    torch.testing.assert_close(f["block1"][3, :, 2, 1].float(), expected, atol=5e-3, rtol=2e-3)


def test_cache_roundtrip_and_provenance_mismatch(tiny_teacher, teacher_factory, tmp_path):
    batches, _, _ = _batches()
    path = tmp_path / "feats.safetensors"
    kw = dict(dataset="toy", split="train", preprocessing={"resize": 32})
    f1 = cached_features(path, tiny_teacher, batches, **kw)
    prov = read_provenance(path)
    assert prov["backbone_checksum"] == state_checksum(tiny_teacher.state_dict()) and prov["split"] == "train"
    # second call loads from the file: the batches are not consumed
    f2 = cached_features(path, tiny_teacher, iter(()), **kw)
    assert torch.equal(f1["global"], f2["global"])
    with pytest.raises(ProvenanceMismatchError, match="split"):
        cached_features(path, tiny_teacher, batches, dataset="toy", split="test", preprocessing={"resize": 32})
    with pytest.raises(ProvenanceMismatchError, match="feature_spec"):
        cached_features(path, tiny_teacher, batches, avgpool=True, **kw)
    other = teacher_factory("dinov3", seed=1)
    with pytest.raises(ProvenanceMismatchError, match="backbone_checksum"):
        cached_features(path, other, batches, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats.safetensors"]  # no temp leftovers


def test_nonfinite_features_name_indices(tmp_path):
    g = torch.zeros(6, 4, dtype=torch.float16)
    g[2, 1] = float("nan")
    g[5, 0] = 70000.0  # overflows fp16 to inf
    with pytest.raises(NonFiniteFeaturesError, match=r"2 sample\(s\).*indices: 2, 5") as e:
        check_finite({"global": g, "labels": torch.arange(6)})
    assert e.value.indices == [2, 5]
    prov = make_provenance(backbone_checksum="x", dataset="d", split="s", preprocessing={}, spec=feature_spec())
    with pytest.raises(NonFiniteFeaturesError):
        save_features(tmp_path / "bad.safetensors", {"global": g}, prov)
    assert not any(tmp_path.iterdir())


def test_nonfinite_backbone_output_stops_extraction(tiny_teacher):
    class Broken(torch.nn.Module):
        num_prefix_tokens = 1

        def forward(self, x, output_hidden_states=False):
            out = tiny_teacher(x, output_hidden_states)
            out.pooler_output = out.pooler_output.clone()
            out.pooler_output[1] = float("inf")
            return out

    batches, _, _ = _batches(n=8, bs=4)
    with pytest.raises(NonFiniteFeaturesError) as e:
        extract_features(Broken(), batches)
    assert e.value.indices == [1, 5]


def test_load_rejects_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_features(tmp_path / "nope.safetensors", {})


@pytest.mark.parametrize("family, name", [("vit", "layernorm"), ("siglip", "post_layernorm")])
def test_final_norm_is_the_norm_that_makes_the_pooled_feature(teacher_factory, family, name):
    teacher = teacher_factory(family, 0)
    assert teacher.final_norm is getattr(teacher.vision, name)
    x = torch.rand(2, 3, teacher.image_size, teacher.image_size)
    with torch.no_grad():
        out = teacher(x, output_hidden_states=True)
        torch.testing.assert_close(teacher.final_norm(out.hidden_states[-1]), out.last_hidden_state)
