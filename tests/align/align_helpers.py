"""Helpers for the alignment tests: synthetic webdataset shards, tiny saved teachers, configs."""

from __future__ import annotations

import io
import os

import numpy as np
import torch
import transformers as T
import webdataset as wds
from PIL import Image

COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 70, 230], [240, 220, 40]], dtype=np.float32)


def synthetic_image(rng: np.random.Generator, label: int, size: int = 40) -> np.ndarray:
    """A coloured square of class ``label`` on a random smooth background."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    bg = rng.uniform(0, 255, 3) * (0.5 + 0.5 * np.stack([xx, yy, 1 - xx], -1))
    img = bg.copy()
    s = int(rng.integers(size // 4, size // 2))
    y, x = rng.integers(0, size - s, 2)
    img[y : y + s, x : x + s] = COLOURS[label]
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_shards(folder, n_shards: int, per_shard: int, seed: int = 0, corrupt_every: int = 0, prefix="train",
                 with_labels: bool = True):
    """Write ``n_shards`` tar shards of ``per_shard`` PNG samples with 'cls' labels.

    With ``corrupt_every`` = k, every k-th sample carries undecodable image bytes. Each shard gets
    its index (``aloe.data.shard_index``), as the data stage's shards do.
    """
    from aloe.data.shard_index import write_index

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, i = [], 0
    for s in range(n_shards):
        path = os.path.join(folder, f"{prefix}-{s:05d}.tar")
        keys = []
        with wds.TarWriter(path) as sink:
            for _ in range(per_shard):
                label = int(rng.integers(0, len(COLOURS)))
                data = _png(synthetic_image(rng, label))
                if corrupt_every and i % corrupt_every == corrupt_every - 1:
                    data = b"not an image at all"
                keys.append(f"{prefix}{s:03d}_{i:06d}")
                sink.write({"__key__": keys[-1], "png": data, **({"cls": str(label)} if with_labels else {})})
                i += 1
        write_index(path, keys)
        paths.append(path)
    return paths


def make_teacher_dir(family: str, directory, seed: int = 0, layers: int = 3) -> str:
    """Save a tiny random HF teacher (hidden 32, 32 px, patch 8) of ``family`` into ``directory``."""
    torch.manual_seed(seed)
    common = dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                  image_size=32, patch_size=8)
    if family == "vit":
        model = T.ViTModel(T.ViTConfig(**common), add_pooling_layer=False)
    elif family == "dinov3":
        model = T.DINOv3ViTModel(T.DINOv3ViTConfig(**common, num_register_tokens=2, layerscale_value=0.5))
    elif family == "siglip":
        model = T.SiglipVisionModel(T.SiglipVisionConfig(**common))
    else:
        raise ValueError(family)
    model.save_pretrained(directory)
    return str(directory)


def base_config(out_dir, shards, **overrides) -> dict:
    cfg = dict(out_dir=str(out_dir), shards=shards["train"], heldout_shards=shards["heldout"], lr=3e-3,
               total_steps=6, warmup_steps=2, global_batch=8, micro_batch=4, progress=False, seed=0,
               num_workers=0, shuffle_buffer=16)
    cfg.update(overrides)
    return cfg


class TwoRankStream:
    """Single-process stream yielding exactly the global batch a 2-rank run sees (rank 0's local
    batch, then rank 1's), used as the reference for the DDP equivalence test."""

    def __init__(self, shards, *, batch_size, **kw):
        from aloe.align.loader_stream import LoaderStream

        kw.pop("rank"), kw.pop("world_size")
        self.parts = [LoaderStream(shards, rank=r, world_size=2, batch_size=batch_size // 2, **kw) for r in range(2)]
        self.stats = self.parts[0].stats

    def state_dict(self):
        return self.parts[0].state_dict()

    def __iter__(self):
        from aloe.data.align_loader import AlignmentBatch

        for a, b in zip(*self.parts):
            yield AlignmentBatch(torch.cat([a.pixels, b.pixels]), a.keys + b.keys)


def ddp_worker(rank: int, world_size: int, port: int, teacher_dir: str, cfg: dict) -> None:
    """One rank of a gloo DDP run (torch.multiprocessing.spawn target)."""
    from aloe.align import TrainConfig, train
    from aloe.models import bcosify, load_teacher, shared_linear_weights

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    teacher = load_teacher(teacher_dir)
    try:
        train(TrainConfig.from_dict(cfg), teacher, bcosify(teacher), weight_pairs=shared_linear_weights)
    finally:
        torch.distributed.destroy_process_group()
