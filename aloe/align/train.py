"""The alignment / baseline training loop (paper Sec. 4.3).

``train(cfg, teacher, student)`` runs one run end to end and resumes it from
``<out_dir>/checkpoints/latest`` when present. Outputs under ``cfg.out_dir``:
``metrics.jsonl`` (one JSON object per logged step / held-out evaluation),
``checkpoints/``, ``best_student.safetensors`` (best held-out weights), ``student/``
(the final student via ``save_pretrained``: the best held-out weights when a held-out split
is given, else the last) and ``result.json`` (written last: marks the run complete; it holds the
damaged samples of the training and held-out splits, each counted once by shard and key, which
also go to the log).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import safetensors.torch
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from aloe.align import checkpoint as ckpt
from aloe.align.config import TrainConfig
from aloe.align.distributed import DistInfo, all_reduce_mean, barrier, broadcast_flag, gather_objects, init_distributed
from aloe.align.heldout import autocast_factory, heldout_loss
from aloe.align.objectives import build_objective
from aloe.align.signals import StopSignals
from aloe.align.loader_stream import LoaderStream
from aloe.data.damage import SkipCounter
from aloe.data.heldout import heldout_batches
from aloe.data.tario import resolve_shards
from aloe.io import atomic_dir, atomic_path, write_json, write_text
from aloe.lr_schedule import LrFactor
from aloe.progress import Progress

_log = logging.getLogger(__name__)
PAIR_ATTRS = ("family", "image_size", "patch_size", "hidden_size", "num_layers", "num_prefix_tokens")


class TrainingInterrupted(RuntimeError):
    """Raised after a signal-triggered checkpoint; rerunning ``train`` resumes the run."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"training interrupted by a signal at step {step}; checkpoint {path}")
        self.step, self.path = step, path


@dataclass
class TrainResult:
    step: int
    stopped_early: bool
    best_heldout: float | None
    student_dir: Path


def check_pair(teacher, student) -> None:
    """Teacher and student must agree on every shape-defining attribute (one-to-one alignment)."""
    bad = [f"{a}: teacher {getattr(teacher, a, None)!r} vs student {getattr(student, a, None)!r}"
           for a in PAIR_ATTRS if getattr(teacher, a, None) != getattr(student, a, None)]
    if bad:
        raise ValueError("teacher/student mismatch: " + "; ".join(bad))


class _StepModule(nn.Module):
    """Student + objective as one module, so DDP syncs the gradients of both (e.g. a linear head)."""

    def __init__(self, student: nn.Module, objective: nn.Module):
        super().__init__()
        self.student, self.objective = student, objective

    def forward(self, pixels, labels, teacher_out, teacher):
        return self.objective(self.student, teacher_out, pixels, labels, teacher)


LABEL_KEY = "cls"  # the shard member holding a sample's class index (supervised objective)
# Settings that do not change what is computed; num_workers only runs the loader's fixed streams
# (aloe.data.streams), so a run may resume with another number of workers.
RESUME_MAY_CHANGE = {"progress", "log_every", "ckpt_every", "keep_checkpoints", "device", "retrain_finished",
                     "num_workers"}


def _check_same_run(saved: dict, now: dict, path: Path) -> None:
    changed = sorted(k for k in set(saved) | set(now) if k not in RESUME_MAY_CHANGE and saved.get(k) != now.get(k))
    if changed:
        raise ValueError(
            f"checkpoint {path} belongs to a run with different settings for config key(s) {changed}; "
            "resume with the same config or use a new 'out_dir'"
        )


def _metrics_log(path: Path, resume_step: int | None):
    """Append-only JSON-lines log; on resume, lines past the checkpoint are dropped (rewritten atomically)."""
    if resume_step is not None and path.exists():
        keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
        write_text(path, "".join(ln + "\n" for ln in keep))
    elif resume_step is None and path.exists():
        path.unlink()

    def log(record: dict) -> None:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    return log


def _set_aside(out: Path) -> None:
    """Move a finished run to ``<out>.previous`` (replacing an older one) so that it is not resumed."""
    previous = out.with_name(out.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    os.replace(out, previous)


def _save_student_dir(student, out: Path) -> None:
    """``student.save_pretrained`` into a temp folder renamed into place (no partial output)."""
    with atomic_dir(out) as tmp:
        student.save_pretrained(tmp)


def train(
    cfg: TrainConfig,
    teacher: nn.Module,
    student: nn.Module,
    *,
    make_stream: Callable[..., LoaderStream] | None = None,
    weight_pairs=None,
    on_step_end: Callable[[int], None] | None = None,
    info: DistInfo | None = None,
) -> TrainResult:
    """Train ``student`` against the frozen ``teacher`` per ``cfg``; resumes from the last checkpoint."""
    cfg.validate()
    info = info or init_distributed(cfg.device)
    check_pair(teacher, student)
    resolve_shards(cfg.shards)
    if cfg.heldout_shards:
        resolve_shards(cfg.heldout_shards, "heldout_shards")
    heldout = cfg.heldout
    for key in ("train_keys", "heldout_keys"):
        if getattr(cfg, key) is not None and not os.path.isfile(getattr(cfg, key)):
            raise FileNotFoundError(f"config key '{key}': keys file {getattr(cfg, key)} does not exist")
    accum = cfg.accumulation(info.world_size)
    # before anything random is built (e.g. the supervised objective's head); Python's and NumPy's
    # generators too, so that a checkpoint's RNG record is the same in every run
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    objective = build_objective(
        cfg.objective, student, loss=cfg.loss, lambda_global=cfg.lambda_global, lambda_layers=cfg.lambda_layers,
        depths=cfg.depths, alpha=cfg.alpha, temperature=cfg.temperature, weight_pairs=weight_pairs,
        num_classes=cfg.num_classes,
    )
    dev = info.device
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda")
    autocast = autocast_factory(dev, use_bf16)
    out = Path(cfg.out_dir)
    if cfg.retrain_finished and info.is_main and (out / "result.json").is_file():
        _set_aside(out)
    barrier(info)  # no rank looks for checkpoints before a finished run is set aside
    out.mkdir(parents=True, exist_ok=True)

    teacher.to(dev).eval().requires_grad_(False)
    student.to(dev).train()
    objective.to(dev)
    params = [p for p in list(student.parameters()) + list(objective.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, LrFactor(cfg.total_steps, cfg.warmup_steps, cfg.schedule, cfg.tail_steps, cfg.min_lr_factor)
    )
    scaler = torch.amp.GradScaler(dev.type, enabled=False)  # bf16 needs no loss scaling; kept in checkpoints
    step_module = _StepModule(student, objective)
    if info.distributed:
        model = DDP(step_module, device_ids=[dev.index] if dev.type == "cuda" else None,
                    find_unused_parameters=not objective.uses_all_parameters)
    else:
        model = step_module

    modules = {"student": student, "objective": objective}
    run = {"step": 0, "best": math.inf, "bad_evals": 0, "stopped_early": False,
           "positions": [None] * info.world_size, "damage": [None] * info.world_size, "heldout_damage": None}
    resume = ckpt.latest_checkpoint(out / "checkpoints")
    if resume is not None:
        state = ckpt.load_checkpoint(resume, modules, map_location=dev)
        _check_same_run(json.loads(state["config"]), json.loads(json.dumps(cfg.to_dict())), resume)
        if len(state["run"]["positions"]) != info.world_size:
            raise ValueError(
                f"checkpoint {resume} was written by {len(state['run']['positions'])} ranks; "
                f"resuming on {info.world_size} would change the data order"
            )
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"][info.rank])
        run = state["run"]
        run["resumed_at"] = run.get("resumed_at", []) + [run["step"]]
    log = _metrics_log(out / "metrics.jsonl", run["step"] if resume else None) if info.is_main else (lambda r: None)

    make_stream = make_stream or LoaderStream
    label_key = LABEL_KEY if objective.needs_labels else None
    stream = make_stream(
        cfg.shards, rank=info.rank, world_size=info.world_size, seed=cfg.seed, batch_size=cfg.micro_batch,
        image_size=teacher.image_size, resume_state=run["positions"][info.rank], crop_scale=tuple(cfg.crop_scale),
        hflip=cfg.hflip, label_key=label_key, keys_file=cfg.train_keys,
        num_workers=cfg.num_workers, shuffle_buffer=cfg.shuffle_buffer, pin_memory=dev.type == "cuda",
    )
    stream.stats.merge(SkipCounter.from_state(run.get("damage", [None] * info.world_size)[info.rank]))
    heldout_damage = SkipCounter.from_state(run.get("heldout_damage"))  # every rank reads (and records) all of it
    batches = iter(stream)

    def save(step: int) -> Path | None:
        per_rank = gather_objects({"rng": ckpt.rng_state(), "position": stream.state_dict(),
                                   "damage": stream.stats.state()}, info)
        path = None
        if info.is_main:
            run["positions"] = [r["position"] for r in per_rank]
            run["damage"] = [r["damage"] for r in per_rank]
            run["heldout_damage"] = heldout_damage.state()
            state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                     "rng": [r["rng"] for r in per_rank], "run": run, "config": json.dumps(cfg.to_dict())}
            path = ckpt.save_checkpoint(out / "checkpoints", step, modules, state, keep=cfg.keep_checkpoints)
        barrier(info)
        return path

    def evaluate(step: int) -> None:
        batches_ho = heldout_batches(heldout, rank=info.rank, world_size=info.world_size,
                                     batch_size=cfg.micro_batch, image_size=teacher.image_size,
                                     max_samples=cfg.eval_samples, label_key=label_key,
                                     keys_file=cfg.heldout_keys, stats=heldout_damage)
        result = heldout_loss(student, teacher, objective, batches_ho, info, autocast)
        improved = result["heldout_loss"] < run["best"] - cfg.min_delta
        if improved:
            run["best"], run["bad_evals"] = result["heldout_loss"], 0
            if info.is_main:
                with atomic_path(out / "best_student.safetensors") as tmp:
                    safetensors.torch.save_model(student, str(tmp))
        else:
            run["bad_evals"] += 1
        run["stopped_early"] = bool(cfg.patience) and run["bad_evals"] >= cfg.patience
        log({"step": step, "kind": "heldout", **result, "best": run["best"], "damaged_samples": heldout_damage.total})
        if info.is_main:
            _log.info("align: step %d held-out loss %.5g (best %.5g)", step, result["heldout_loss"], run["best"])

    if heldout and run["step"] == 0:
        evaluate(0)  # the starting point: how far the freshly converted student is from the teacher
    bar = tqdm(total=cfg.total_steps, initial=run["step"], disable=not (info.is_main and cfg.progress), desc="align")
    lines = Progress("align", cfg.total_steps, unit="steps", initial=run["step"]) if info.is_main else None
    last_loss: dict[str, float] = {}  # the latest logged train loss, for the progress lines
    with StopSignals() as signals:
        while run["step"] < cfg.total_steps and not run["stopped_early"]:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            totals: dict[str, torch.Tensor] = {}
            for micro in range(accum):
                batch = next(batches)
                pixels = batch.pixels.to(dev, non_blocking=True)
                labels = batch.labels.to(dev) if batch.labels is not None else None
                sync = nullcontext() if micro == accum - 1 or not info.distributed else model.no_sync()
                with sync:
                    with autocast():
                        t_out = None
                        if objective.needs_teacher:
                            with torch.no_grad():
                                t_out = teacher(pixels, output_hidden_states=objective.output_hidden_states)
                        loss, terms = model(pixels, labels, t_out, teacher)
                    (loss / accum).backward()
                for k, v in {"loss": loss.detach(), **terms}.items():
                    totals[k] = totals.get(k, 0.0) + v.float() / accum
            if stream.stats.n_samples >= cfg.corrupt_check_after and stream.stats.share > cfg.max_corrupt_share:
                raise RuntimeError(
                    f"rank {info.rank}: damaged samples above config key 'max_corrupt_share'="
                    f"{cfg.max_corrupt_share}: " + stream.stats.summary("training split", limit=20)
                )
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            run["step"] += 1
            step = run["step"]
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.total_steps:
                logged = {k: all_reduce_mean(v, info).item() for k, v in sorted(totals.items())}
                n_damaged = all_reduce_mean(torch.tensor(float(stream.stats.total), device=dev), info).item()
                log({"step": step, "kind": "train", **logged, "lr": lr, "grad_norm": grad_norm.item(),
                     "img_per_s": cfg.global_batch / (time.perf_counter() - t0),
                     "damaged_samples": round(n_damaged * info.world_size)})
                bar.set_postfix(loss=f"{logged['loss']:.4f}")
                last_loss["loss"] = logged["loss"]
            if lines is not None:
                lines.set(step, **last_loss)
            if heldout and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.total_steps):
                evaluate(step)
            if on_step_end is not None:
                on_step_end(step)
            stop = broadcast_flag(signals.received is not None, info)
            if stop or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
                path = save(step)
                if stop:
                    # hand the signal on; go on only if every rank's previous (Python) handler took it
                    # and returned (submitit's SIGTERM bypass); its USR2 handler requeues and exits
                    if not broadcast_flag(not signals.forward(), info):
                        signals.rearm()
                        continue
                    bar.close()
                    raise TrainingInterrupted(step, path)
    bar.close()
    save(run["step"])
    damage = SkipCounter()
    for state in run["damage"] if info.is_main else []:
        damage.merge(SkipCounter.from_state(state))
    if info.is_main:
        _log.info(damage.summary("training split"))
        _log.info(heldout_damage.summary("held-out split"))
        if (out / "best_student.safetensors").exists():
            safetensors.torch.load_model(student, str(out / "best_student.safetensors"), device=str(dev))
        _save_student_dir(student, out / "student")
        write_json(out / "result.json", {
            "step": run["step"], "stopped_early": run["stopped_early"],
            "best_heldout": None if math.isinf(run["best"]) else run["best"],
            "damaged_samples": {"train": damage.as_dict(), "heldout": heldout_damage.as_dict()},
            "resumed_at": run.get("resumed_at", []), "config": cfg.to_dict(),
        })
    barrier(info)
    best = None if math.isinf(run["best"]) else run["best"]
    return TrainResult(run["step"], run["stopped_early"], best, out / "student")
