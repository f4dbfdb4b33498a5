"""Bad input refused with a message naming what is wrong; weight files: canonical bytes, content checksums."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from aloe import bcosify, explain, load_teacher
from aloe.models import load_student
from aloe.models.backbones import checkpoint_checksum
from aloe.tensorfile import save_tensors, state_checksum, tensors_checksum

from .tiny_teachers import IMAGE, make_teacher_dir


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return bcosify(load_teacher(make_teacher_dir("vit", tmp_path_factory.mktemp("vit"))))


def _pixels(n=2, dtype=torch.float32):
    return torch.rand(n, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(3), dtype=dtype)


def _target(o):
    return o.pooler_output.sum(-1)


@pytest.mark.parametrize("call", ["forward", "explain"])
def test_bad_pixels_are_refused_with_the_reason(student, call):
    run = (lambda x: student(x)) if call == "forward" else (lambda x: explain(student, x, _target))
    x = _pixels()
    with pytest.raises(TypeError, match=r"uint8 \(0..255\).*pass pixels.to\(torch.float32\) / 255"):
        run((x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="pixels are torch.int64"):
        run(torch.ones(2, 3, IMAGE, IMAGE, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"torch.float64 but the student's weights are torch.float32.*"
                                        r"pixels.to\(torch.float32\)"):
        run(x.double())
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got values in \[-2.\d+, 2.\d+\].*ImageNet-normalised"):
        run((x - mean[:, None, None]) / std[:, None, None])
    with pytest.raises(ValueError, match=r"divide by 255"):
        run(x * 255)
    nan = x.clone()
    nan[1, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN/inf values \(images \[1\]\)"):
        run(nan)
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\) \(RGB\), got \(3, 32, 32\)"):
        run(x[0])
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        run(x.numpy())
    run(x.clamp(0, 1))  # valid pixels pass


def test_explain_target_must_be_a_function(student):
    for bad in (3, 2.5):
        with pytest.raises(TypeError, match=r"target must be a function .* got (int 3|float 2.5).*no classes"):
            explain(student, _pixels(), bad)
    with pytest.raises(TypeError, match="target returned float"):
        explain(student, _pixels(), lambda o: 1.0)


def test_truncated_weights_and_bad_config_values_are_named(student, tmp_path):
    student.save_pretrained(tmp_path / "s")
    weights = tmp_path / "s" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=rf"{weights} is truncated: its tensors need {len(data)} bytes"):
        load_student(tmp_path / "s")
    weights.write_bytes(data[:5])
    with pytest.raises(ValueError, match=rf"{weights} is not a safetensors file"):
        load_student(tmp_path / "s")
    weights.write_bytes(data)
    config = tmp_path / "s" / "config.json"
    good = json.loads(config.read_text())
    assert good["model_type"] == "aloe_bcos_student"
    fields = {k: v for k, v in good.items() if k not in ("model_type", "architectures", "transformers_version")}
    for key, value, message in [("hidden_size", "abc", "'hidden_size' must be an integer, got 'abc'"),
                                ("use_cls", 1, "'use_cls' must be true or false, got 1"),
                                ("num_heads", 0, "'num_heads' must be >= 1, got 0"),
                                ("eps", "small", "'eps' must be a number, got 'small'")]:
        for layout in ({**good, key: value}, {"aloe_student": {**fields, key: value}}):  # the HF and the legacy one
            config.write_text(json.dumps(layout))
            with pytest.raises(ValueError, match=f"{config}: student config key {message}"):
                load_student(tmp_path / "s")
    config.write_text(json.dumps({**good, "mystery": 1}))
    with pytest.raises(ValueError, match=rf"{config}: unknown student config keys \['mystery'\]"):
        load_student(tmp_path / "s")
    config.write_text("{not json")
    with pytest.raises(ValueError, match=f"{config} is not valid JSON"):
        load_student(tmp_path / "s")


_SAVE = """
import sys, torch
from aloe.tensorfile import save_tensors
save_tensors(sys.argv[1], {"b": torch.arange(4.0), "a": torch.ones(2, 3, dtype=torch.float64)},
             metadata={"format": "pt", "aloe": "x", "extra": "y", "more": "z"})
"""


def test_same_tensors_same_bytes_in_every_process(tmp_path):
    # safetensors writes metadata in hash-map order, which differs between processes
    paths = [tmp_path / f"{i}.safetensors" for i in range(4)]
    for p in paths:
        subprocess.run([sys.executable, "-c", _SAVE, str(p)], check=True)
    assert len({p.read_bytes() for p in paths}) == 1
    assert load_file(str(paths[0]))["a"].dtype == torch.float64


def test_checksums_cover_tensors_not_bytes(student, tmp_path):
    state = {k: v.contiguous() for k, v in student.state_dict().items()}
    save_file(state, str(tmp_path / "plain.safetensors"), metadata={"a": "1", "b": "2"})
    save_tensors(tmp_path / "canonical.safetensors", state, metadata={"other": "metadata"})
    assert (tmp_path / "plain.safetensors").read_bytes() != (tmp_path / "canonical.safetensors").read_bytes()
    digest = tensors_checksum([tmp_path / "plain.safetensors"])
    assert digest == tensors_checksum([tmp_path / "canonical.safetensors"]) == state_checksum(state)
    names = sorted(state)  # the same tensors split over two shards (HF sharded checkpoints)
    (tmp_path / "sharded").mkdir()
    save_file({k: state[k] for k in names[:5]}, str(tmp_path / "sharded" / "model-1.safetensors"))
    save_file({k: state[k] for k in names[5:]}, str(tmp_path / "sharded" / "model-2.safetensors"))
    assert checkpoint_checksum(tmp_path / "sharded") == digest
    changed = dict(state)
    changed[names[0]] = state[names[0]].clone()
    changed[names[0]].view(-1)[0] += 1
    assert state_checksum(changed) != digest
    matrix = next(k for k in names if state[k].ndim == 2 and state[k].dtype == torch.float32)
    reshaped = dict(state, **{matrix: state[matrix].reshape(-1)})  # same bytes, other shape
    assert state_checksum(reshaped) != digest
    retyped = dict(state, **{matrix: state[matrix].view(torch.int32)})  # same bytes, other dtype
    assert state_checksum(retyped) != digest
    with pytest.raises(ValueError, match="is in both"):
        tensors_checksum([tmp_path / "plain.safetensors", tmp_path / "canonical.safetensors"])
