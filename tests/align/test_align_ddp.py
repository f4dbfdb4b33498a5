"""A 2-process gloo DDP run with global batch B matches a 1-process run with batch B."""

import json
import socket

import safetensors.torch
import torch
import torch.multiprocessing as mp
from align_helpers import TwoRankStream, base_config, ddp_worker

from aloe.align import TrainConfig, train
from aloe.models import bcosify, load_teacher, shared_linear_weights


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(path):
    return [json.loads(x) for x in open(path / "metrics.jsonl")]


def test_two_process_gloo_matches_one_process(teacher_dir, shards, tmp_path):
    kw = dict(total_steps=5, warmup_steps=1, global_batch=8, micro_batch=4, eval_every=5, alpha=0.01)
    ddp_cfg = base_config(tmp_path / "ddp", shards, **kw)
    # fork: the children inherit the imported modules instead of re-importing torch + transformers
    mp.start_processes(ddp_worker, args=(2, _free_port(), teacher_dir, ddp_cfg), nprocs=2, start_method="fork")

    one_cfg = TrainConfig.from_dict(base_config(tmp_path / "one", shards, **{**kw, "micro_batch": 8}))
    teacher = load_teacher(teacher_dir)
    train(one_cfg, teacher, bcosify(teacher), make_stream=TwoRankStream, weight_pairs=shared_linear_weights)

    ddp, one = _lines(tmp_path / "ddp"), _lines(tmp_path / "one")
    assert [(x["step"], x["kind"]) for x in ddp] == [(x["step"], x["kind"]) for x in one]
    for a, b in zip(ddp, one):
        key = "loss" if a["kind"] == "train" else "heldout_loss"
        assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(b[key])), (a, b)
    losses = [x["loss"] for x in one if x["kind"] == "train"]
    assert losses[-1] < losses[0]  # it trained, so matching curves are not trivially flat
    wa = safetensors.torch.load_file(tmp_path / "ddp" / "student" / "model.safetensors")
    wb = safetensors.torch.load_file(tmp_path / "one" / "student" / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-4)
    # only rank 0 wrote: one metrics line per step/evaluation, one checkpoint series
    assert len(ddp) == len(one)
