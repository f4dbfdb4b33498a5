"""The training loop: resume equality, actual alignment, bad input, corrupt data, baselines, LR selection."""

import json
import os
import signal

import pytest
import safetensors.torch
import torch
from align_helpers import base_config, make_teacher_dir, write_shards

import yaml

from aloe.align import TrainConfig, TrainingInterrupted, select_best_run, train
from aloe.align.__main__ import main
from aloe.align.job import run_alignment
from aloe.models import bcosify, load_student, load_teacher, shared_linear_weights


def _lines(out):
    return [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]


def test_interrupted_and_resumed_run_equals_uninterrupted(teacher_dir, shards, tmp_path):
    # accumulation 2, held-out evaluations and the weight-norm term all take part
    kw = dict(total_steps=6, eval_every=2, alpha=0.01)
    ref = bcosify(load_teacher(teacher_dir))
    train(TrainConfig.from_dict(base_config(tmp_path / "a", shards, **kw)), load_teacher(teacher_dir), ref,
          weight_pairs=shared_linear_weights)

    def interrupt_at_3(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGUSR2)

    cfg_b = TrainConfig.from_dict(base_config(tmp_path / "b", shards, **kw))
    with pytest.raises(TrainingInterrupted) as exc:
        train(cfg_b, load_teacher(teacher_dir), bcosify(load_teacher(teacher_dir)),
              weight_pairs=shared_linear_weights, on_step_end=interrupt_at_3)
    assert exc.value.step == 3 and not (tmp_path / "b" / "result.json").exists()
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # handlers restored
    resumed = bcosify(load_teacher(teacher_dir))
    # resumed with two loader workers instead of none: the batches do not depend on it
    cfg_b = TrainConfig.from_dict(base_config(tmp_path / "b", shards, **kw, num_workers=2))
    result = train(cfg_b, load_teacher(teacher_dir), resumed, weight_pairs=shared_linear_weights)
    assert result.step == 6
    assert json.load(open(tmp_path / "b" / "result.json"))["resumed_at"] == [3]
    with pytest.raises(ValueError, match=r"different settings for config key\(s\) \['lr'\]"):
        changed = TrainConfig.from_dict(base_config(tmp_path / "b", shards, **{**kw, "lr": 1e-4}))
        train(changed, load_teacher(teacher_dir), bcosify(load_teacher(teacher_dir)),
              weight_pairs=shared_linear_weights)
    # the resumed run ends with exactly the same weights (both in memory and in the exported student)
    for (name, a), (_, b) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    a = safetensors.torch.load_file(tmp_path / "a" / "student" / "model.safetensors")
    b = safetensors.torch.load_file(tmp_path / "b" / "student" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the metrics log of the resumed run holds each step once, identical to the uninterrupted one
    la, lb = _lines(tmp_path / "a"), _lines(tmp_path / "b")
    assert [(x["step"], x["kind"]) for x in la] == [(x["step"], x["kind"]) for x in lb]
    assert [x["loss"] for x in la if x["kind"] == "train"] == [x["loss"] for x in lb if x["kind"] == "train"]


def test_alignment_on_tiny_teacher_aligns(teacher_dir, shards, tmp_path):
    cfg = base_config(tmp_path, shards, total_steps=40, warmup_steps=4, eval_every=40, lr=3e-3)
    result = train(TrainConfig.from_dict(cfg), load_teacher(teacher_dir), bcosify(load_teacher(teacher_dir)))
    heldout = [x for x in _lines(tmp_path) if x["kind"] == "heldout"]
    initial, final = heldout[0], heldout[-1]
    assert (initial["step"], final["step"]) == (0, 40)
    assert final["heldout/global"] < 0.3 * initial["heldout/global"]
    assert final["heldout/layers"] < 0.5 * initial["heldout/layers"]
    assert result.best_heldout == pytest.approx(final["heldout_loss"])
    train_lines = [x for x in _lines(tmp_path) if x["kind"] == "train"]
    assert [x["step"] for x in train_lines] == list(range(1, 41))
    assert {"loss", "global", "layers", "lr", "img_per_s", "grad_norm"} <= set(train_lines[0])
    # the exported student loads with the foundation loader and reproduces the trained features
    student = load_student(tmp_path / "student")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(student(x).pooler_output,
                                                    load_teacher(teacher_dir)(x).pooler_output)
    assert cos.min() > 0.7


def test_bad_input_fails_before_training(teacher_dir, shards, tmp_path):
    teacher = load_teacher(teacher_dir)
    with pytest.raises(ValueError, match="'depths'"):
        train(TrainConfig.from_dict(base_config(tmp_path / "d", shards, depths=[1, 4])), teacher, bcosify(teacher))
    with pytest.raises(ValueError, match="'shards': the shard list is empty"):
        train(TrainConfig.from_dict(base_config(tmp_path / "e", {**shards, "train": []})), teacher, bcosify(teacher))
    with pytest.raises(FileNotFoundError, match="heldout_shards"):
        train(TrainConfig.from_dict(base_config(tmp_path / "f", {**shards, "heldout": ["/nonexistent.tar"]})),
              teacher, bcosify(teacher))
    other = load_teacher(make_teacher_dir("vit", tmp_path / "deeper", layers=4))
    with pytest.raises(ValueError, match="teacher/student mismatch: num_layers"):
        train(TrainConfig.from_dict(base_config(tmp_path / "g", shards)), teacher, bcosify(other))
    with pytest.raises(ValueError, match="unknown alignment config key"):
        TrainConfig.from_dict(base_config(tmp_path / "h", shards, learning_rate=1.0))
    with pytest.raises(ValueError, match="'global_batch'=8 is not a multiple"):
        train(TrainConfig.from_dict(base_config(tmp_path / "i", shards, micro_batch=3)), teacher, bcosify(teacher))
    assert not any((tmp_path / d / "checkpoints").exists() for d in "defghi")


def test_damaged_samples_are_counted_once_and_gate_training(teacher_dir, tmp_path):
    bad = {"train": write_shards(tmp_path / "bad", 2, 16, corrupt_every=4),
           "heldout": write_shards(tmp_path / "ho", 1, 8, seed=3, corrupt_every=4, prefix="heldout")}
    teacher = load_teacher(teacher_dir)
    # 4 steps of 8: the 24 good samples of the 32 (epoch 0 ends, all 8 damaged ones are met), then 8 of
    # epoch 1, which meets them again; held-out evaluations after every step
    ok = base_config(tmp_path / "ok", bad, total_steps=4, eval_every=1, max_corrupt_share=0.3, corrupt_check_after=8)
    train(TrainConfig.from_dict(ok), teacher, bcosify(teacher))
    damaged = json.load(open(tmp_path / "ok" / "result.json"))["damaged_samples"]
    assert (damaged["train"]["total"], damaged["train"]["samples"]) == (8, 32)
    assert damaged["train"]["by_shard"] == {"train-00000.tar": {"corrupt_image": 4},
                                            "train-00001.tar": {"corrupt_image": 4}}
    assert (damaged["heldout"]["total"], damaged["heldout"]["samples"]) == (2, 8)  # 5 evaluations, counted once
    assert _lines(tmp_path / "ok")[-1]["damaged_samples"] == 2
    assert [x["damaged_samples"] for x in _lines(tmp_path / "ok") if x["kind"] == "train"][-1] == 8

    def interrupt_at_1(step):
        if step == 1:
            os.kill(os.getpid(), signal.SIGUSR2)

    resumed = base_config(tmp_path / "resumed", bad, **{k: ok[k] for k in ("total_steps", "eval_every",
                                                                         "max_corrupt_share", "corrupt_check_after")})
    with pytest.raises(TrainingInterrupted):
        train(TrainConfig.from_dict(resumed), teacher, bcosify(teacher), on_step_end=interrupt_at_1)
    train(TrainConfig.from_dict(resumed), teacher, bcosify(teacher))  # the checkpoint carries the record
    assert json.load(open(tmp_path / "resumed" / "result.json"))["damaged_samples"] == damaged

    strict = base_config(tmp_path / "strict", bad, total_steps=3, max_corrupt_share=0.1, corrupt_check_after=8)
    with pytest.raises(RuntimeError, match=r"above config key 'max_corrupt_share'=0.1: training split: \d+ of 32 "
                                           r"samples damaged .*train-0000\d.tar: \d+ \(corrupt_image \d+\)"):
        train(TrainConfig.from_dict(strict), teacher, bcosify(teacher))


@pytest.mark.parametrize("family,objective", [("vit", "supervised"), ("dinov3", "supervised"),
                                              ("siglip", "global_distill")])
def test_baselines_train_and_save_loadable_student(family, objective, shards, tmp_path):
    tdir = make_teacher_dir(family, tmp_path / "teacher")
    extra = {"num_classes": 4} if objective == "supervised" else {}
    # no held-out split: the exported student is the last one (else the best held-out one, maybe step 0)
    run = base_config(tmp_path / "run", {**shards, "heldout": []}, objective=objective, total_steps=3, **extra)
    job = {"teacher": tdir, "train": run}
    result = run_alignment(job)
    lines = [x for x in _lines(tmp_path / "run") if x["kind"] == "train"]
    assert len(lines) == 3
    assert ("ce" in lines[0]) == (objective == "supervised")
    assert ("layers" in lines[0]) is False
    student = load_student(result.student_dir)
    assert student.family == family
    saved = safetensors.torch.load_file(result.student_dir / "model.safetensors")
    fresh = bcosify(load_teacher(tdir)).state_dict()
    assert any(not torch.equal(saved[k], fresh[k]) for k in saved)  # it trained


def test_lr_sweep_selection_records_compared_losses(teacher_dir, shards, tmp_path):
    # one run per LR, each in its own folder (the workflow's align_run jobs)
    runs = {lr: base_config(tmp_path / f"lr_{lr:g}", shards, total_steps=4, lr=lr) for lr in (3e-3, 1e-7)}
    for cfg in runs.values():
        train(TrainConfig.from_dict(cfg), load_teacher(teacher_dir), bcosify(load_teacher(teacher_dir)))
    record = select_best_run([c["out_dir"] for c in runs.values()], tmp_path / "selected.json")
    assert record["selected_lr"] == 3e-3
    assert json.load(open(tmp_path / "selected.json")) == record
    losses = {r["lr"]: r["heldout_loss"] for r in record["compared"]}
    assert losses[3e-3] < losses[1e-7]
    with pytest.raises(FileNotFoundError, match="not finished"):
        select_best_run([tmp_path / "nothing"], tmp_path / "x.json")
    # the same selection through the command line
    main(["select", str(tmp_path / "cli.json"), *[c["out_dir"] for c in runs.values()]])
    assert json.load(open(tmp_path / "cli.json")) == record


def test_cli_trains_from_a_yaml_job(teacher_dir, shards, tmp_path):
    job = {"teacher": teacher_dir, "train": base_config(tmp_path / "run", shards, total_steps=2, depths=[2, 3])}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    main(["train", str(tmp_path / "job.yaml")])
    result = json.load(open(tmp_path / "run" / "result.json"))
    assert result["step"] == 2 and result["config"]["depths"] == [2, 3]
    with pytest.raises(ValueError, match="unknown alignment job key"):
        run_alignment({**job, "teacher_name": "x"})


def test_data_stage_key_splits_select_train_and_heldout(teacher_dir, tmp_path):
    from aloe.data.subsets import make_key_splits

    paths = write_shards(tmp_path / "set", 2, 24, seed=5)
    summary = make_key_splits(tmp_path / "set", tmp_path / "splits", fractions=[0.5], val_size=12, seed=0)
    train_keys = str(tmp_path / "splits" / summary["subsets"][next(iter(summary["subsets"]))]["file"])
    cfg = base_config(tmp_path / "run", {"train": paths, "heldout": []}, total_steps=2, train_keys=train_keys,
                      heldout_keys=str(tmp_path / "splits" / "val.txt"))
    result = train(TrainConfig.from_dict(cfg), load_teacher(teacher_dir), bcosify(load_teacher(teacher_dir)))
    assert result.best_heldout is not None
    assert [x["step"] for x in _lines(tmp_path / "run") if x["kind"] == "heldout"] == [0, 2]
    with pytest.raises(ValueError, match="'heldout_keys'.*'train_keys'"):
        TrainConfig.from_dict({**cfg, "train_keys": None})


def test_bf16_autocast_path_runs(teacher_dir, shards, tmp_path):
    # the GPU default (bf16 autocast) exercised on CPU: losses finite and weights stay float32
    cfg = base_config(tmp_path, shards, total_steps=2, precision="bf16", loss="siglip")
    student = bcosify(load_teacher(teacher_dir))
    train(TrainConfig.from_dict(cfg), load_teacher(teacher_dir), student)
    lines = [x for x in _lines(tmp_path) if x["kind"] == "train"]
    assert all(torch.isfinite(torch.tensor(x["loss"])) for x in lines)
    assert all(p.dtype == torch.float32 for p in student.parameters())


def test_signal_with_a_returning_previous_handler_saves_and_goes_on(teacher_dir, shards, tmp_path):
    # like submitit's SIGTERM "bypass": the previous handler only logs, so training continues
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        cfg = base_config(tmp_path, {**shards, "heldout": []}, total_steps=4, keep_checkpoints=5)

        def term_at_2(step):
            if step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

        result = train(TrainConfig.from_dict(cfg), load_teacher(teacher_dir), bcosify(load_teacher(teacher_dir)),
                       on_step_end=term_at_2)
        assert calls == [signal.SIGTERM] and result.step == 4
        assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000000002",
                                                                                     "step_000000004"]
    finally:
        signal.signal(signal.SIGTERM, previous)
