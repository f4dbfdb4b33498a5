"""Tiny demo teachers trained on CPU, saved so that ``load_teacher(dir)`` reads them like hub ids.

On a machine without the model hub the demo workflow first trains one teacher per family:

- ``vit``: ``ViTModel`` + a linear classifier on the final CLS (after the final LayerNorm, the
  feature ``Teacher`` pools), supervised cross-entropy; the ``ViTModel`` is the teacher, the head
  is kept aside in ``classifier_head.safetensors`` for checks.
- ``dinov3``: ``DINOv3ViTModel`` (4 register tokens, LayerScale, RoPE) trained the same supervised
  way on a different sample. This is an ARCHITECTURE stand-in only: DINOv3's self-distillation
  recipe is out of scope for a one-minute CPU run, and a supervised CLS objective is the simplest
  robust way to get a useful encoder of that architecture.
- ``siglip``: ``SiglipModel`` (vision tower with attention-pooling head + text tower) trained with
  the SigLIP sigmoid loss on (image, caption) pairs, with a word-level tokenizer
  (``demo_tokenizer``) saved beside it. A batch holds many captions with the same content ("a photo
  of a red star", "an image of a red star"); pairs in the same ``positive_groups`` entry (the
  class a synthetic caption names; by default: the identical caption string) count as positives.

Each output directory holds ``config.json`` + ``model.safetensors`` (``save_pretrained``),
``preprocessor_config.json`` (image_mean / image_std / size, read by ``load_teacher``), the
tokenizer files for SigLIP, and ``train_summary.json``. The directory is built under a temporary
name and renamed into place, so a crash never leaves one that looks complete.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import transformers as T
from safetensors.torch import save_file
from torch import nn

from aloe.data.zero_shot import load_templates
from aloe.eval.zeroshot import build_siglip_classifier, zeroshot_logits
from aloe.io import atomic_dir, write_json
from aloe.models.demo_teacher_data import TEACHER_STREAMS, demo_caption_pairs, demo_labelled_images
from aloe.models.demo_tokenizer import EOS_ID, PAD_ID, build_word_tokenizer
from aloe.models.teacher import HALF, IMAGENET_MEAN, IMAGENET_STD
from aloe.progress import Progress

DEMO_FAMILIES = ("vit", "dinov3", "siglip")
NORMALISATION = {"vit": (HALF, HALF), "dinov3": (IMAGENET_MEAN, IMAGENET_STD), "siglip": (HALF, HALF)}
PROCESSOR_CLASS = {"vit": "ViTImageProcessor", "dinov3": "DINOv3ViTImageProcessorFast",
                   "siglip": "SiglipImageProcessor"}
SUMMARY_FILE = "train_summary.json"
HEAD_FILE = "classifier_head.safetensors"  # the training head (weight, bias); not part of the teacher


# ---------------------------------------------------------------- inputs
def _pixels(images: Any, image_size: int) -> torch.Tensor:
    """(N, S, S, 3) uint8 array or (N, 3, S, S) float tensor in [0, 1] -> (N, 3, S, S) float32 in [0, 1]."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"uint8 train_images must be (N, H, W, 3), got {images.shape}")
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    else:
        x = torch.as_tensor(images, dtype=torch.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"float train_images must be (N, 3, H, W), got {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError("float train_images must lie in [0, 1]")
    if tuple(x.shape[-2:]) != (image_size, image_size):
        raise ValueError(f"train_images are {tuple(x.shape[-2:])} pixels but image_size is {image_size}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 train_images, got {len(x)}")
    return x.contiguous()


def _normaliser(family: str) -> Callable[[torch.Tensor], torch.Tensor]:
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALISATION[family])
    return lambda x: (x - mean) / std


def _vision_kwargs(image_size: int, patch_size: int, hidden_size: int, num_layers: int, num_heads: int) -> dict:
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
    return dict(image_size=image_size, patch_size=patch_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
                num_attention_heads=num_heads, intermediate_size=4 * hidden_size)


# ---------------------------------------------------------------- optimisation
def _fit(step_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], params: list, n: int, *, steps: int,
         batch_size: int, lr: float, weight_decay: float, seed: int) -> list[float]:
    """AdamW with linear warm-up and cosine decay over seeded epoch permutations; per-step losses.

    ``step_loss(index, flip)`` gets the batch's sample indices and a per-sample horizontal-flip mask.
    """
    if steps < 1 or batch_size < 2:
        raise ValueError(f"steps must be >= 1 and batch_size >= 2, got steps={steps}, batch_size={batch_size}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    flat = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    batch_size = min(batch_size, n)
    order, pos, losses = torch.randperm(n, generator=gen), 0, []
    progress = Progress("teacher training", steps, unit="steps")
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        index = order[pos : pos + batch_size]
        pos += batch_size
        flip = torch.rand(len(index), generator=gen) < 0.5
        loss = step_loss(index, flip)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"demo teacher training diverged (loss {loss.item()}); lower lr={lr}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flat, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        progress.update(loss=losses[-1])
    return losses


def _batch(pixels: torch.Tensor, index: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    x = pixels[index]
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@torch.no_grad()
def _in_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[s : s + size]) for s in range(0, len(x), size)])


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (None: leave torch's setting). On a busy 2-core machine
    one thread per job is several times faster than two threads fighting over the cores."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- saving
def _save_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    with atomic_dir(out_dir) as tmp:
        write(tmp)


def _write_preprocessor(directory: Path, family: str, image_size: int) -> None:
    mean, std = NORMALISATION[family]
    write_json(directory / "preprocessor_config.json", {
        "image_processor_type": PROCESSOR_CLASS[family], "image_mean": list(mean), "image_std": list(std),
        "size": {"height": image_size, "width": image_size}, "do_resize": True, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "resample": 2,
    })


def _summary(family: str, losses: list[float], started: float, **metrics: Any) -> dict:
    tail = losses[-max(1, len(losses) // 10) :]
    return {"family": family, "steps": len(losses), "final_train_loss": float(np.mean(tail)),
            "first_train_loss": losses[0], "seconds": round(time.perf_counter() - started, 2), **metrics}


# ---------------------------------------------------------------- families
def train_classifier_teacher(
    family: str, out_dir: str | os.PathLike, *, train_images: Any, train_labels: Any, image_size: int,
    patch_size: int = 8, hidden_size: int = 64, num_layers: int = 4, num_heads: int = 4, steps: int = 300,
    batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.05, seed: int = 0,
) -> dict[str, Any]:
    """Train a ``vit`` or ``dinov3`` teacher with a linear CE head on its pooled CLS; save the encoder.

    ``train_images``: (N, S, S, 3) uint8 or (N, 3, S, S) float in [0, 1]; ``train_labels``: (N,) ints
    in [0, C). Returns (and saves as ``train_summary.json``) loss, train accuracy, steps, seconds.
    The training head is kept beside the encoder as ``classifier_head.safetensors`` so its accuracy
    can be checked through ``load_teacher``; ``load_teacher`` ignores it.
    """
    if family not in ("vit", "dinov3"):
        raise ValueError(f"train_classifier_teacher trains 'vit' or 'dinov3', got {family!r}")
    started = time.perf_counter()
    pixels = _pixels(train_images, image_size)
    labels = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    if labels.shape != (len(pixels),) or labels.min() < 0:
        raise ValueError(f"train_labels must be (N,) = ({len(pixels)},) non-negative ints, got {tuple(labels.shape)}")
    num_classes = int(labels.max()) + 1
    torch.manual_seed(seed)
    vision = _vision_kwargs(image_size, patch_size, hidden_size, num_layers, num_heads)
    if family == "vit":
        model = T.ViTModel(T.ViTConfig(**vision))
        pool = lambda out: out.last_hidden_state[:, 0]  # noqa: E731  final CLS after the final LayerNorm
    else:
        model = T.DINOv3ViTModel(T.DINOv3ViTConfig(**vision, num_register_tokens=4, layerscale_value=0.1))
        pool = lambda out: out.pooler_output  # noqa: E731
    head = nn.Linear(hidden_size, num_classes)
    norm = _normaliser(family)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return head(pool(model(pixel_values=norm(x))))

    def step_loss(index: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits(_batch(pixels, index, flip)), labels[index])

    model.train()
    losses = _fit(step_loss, [*model.parameters(), *head.parameters()], len(pixels), steps=steps,
                  batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed)
    model.eval()
    check = slice(0, min(len(pixels), 2000))
    acc = float((_in_batches(logits, pixels[check]).argmax(1) == labels[check]).float().mean())
    summary = _summary(family, losses, started, num_classes=num_classes, num_images=len(pixels),
                       train_accuracy=acc, seed=seed)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp / HEAD_FILE))
        _write_preprocessor(tmp, family, image_size)
        write_json(tmp / SUMMARY_FILE, summary)

    _save_atomically(Path(out_dir), write)
    return summary


def _siglip_loss(img: torch.Tensor, txt: torch.Tensor, same: torch.Tensor, scale, bias) -> torch.Tensor:
    """SigLIP sigmoid loss (Zhai et al. 2023, as in HF ``SiglipModel``), summed over texts, mean over images;
    ``same[i, j]`` marks pair (i, j) as positive."""
    logits = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T * scale.exp() + bias
    return -F.logsigmoid(torch.where(same, logits, -logits)).sum(-1).mean()


def train_siglip_teacher(
    out_dir: str | os.PathLike, *, train_images: Any, captions: Sequence[str], image_size: int,
    patch_size: int = 8, hidden_size: int = 64, num_layers: int = 4, num_heads: int = 4, text_layers: int = 2,
    max_text_length: int = 64, steps: int = 300, batch_size: int = 64, lr: float = 1e-3,
    weight_decay: float = 0.05, seed: int = 0, class_names: Sequence[str] = (), train_labels: Any = None,
    positive_groups: Any = None,
) -> dict[str, Any]:
    """Train a SigLIP image + text teacher with the sigmoid loss on (image, caption) pairs; save it and
    its tokenizer. The tokenizer vocabulary holds the captions' words, ``class_names`` and the words
    of the shipped zero-shot templates, so every evaluation prompt tokenises without [UNK].

    ``positive_groups`` (N,) ints: pairs (i, j) with equal groups are positives in the sigmoid loss
    (default: identical captions). With ``class_names`` and ``train_labels`` the summary also
    reports zero-shot accuracy with "a photo of a {c}." on (up to 2000) training images; it always
    reports image -> caption retrieval top-1 over the distinct captions (at most 1 / number of
    templates per class when the template is random).
    """
    started = time.perf_counter()
    pixels = _pixels(train_images, image_size)
    captions = [str(c) for c in captions]
    if len(captions) != len(pixels):
        raise ValueError(f"got {len(captions)} captions for {len(pixels)} train_images")
    templates = load_templates("single") + load_templates("openclip_imagenet")
    tokenizer = build_word_tokenizer([*captions, *class_names, *templates], max_length=max_text_length)
    distinct, inverse = np.unique(np.asarray(captions, dtype=object), return_inverse=True)
    distinct, caption_id = [str(c) for c in distinct], torch.as_tensor(inverse.reshape(-1), dtype=torch.long)
    tokens = torch.as_tensor(tokenizer(distinct, padding="max_length", max_length=max_text_length,
                                       truncation=True)["input_ids"])

    torch.manual_seed(seed)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
                num_hidden_layers=text_layers, num_attention_heads=num_heads, max_position_embeddings=max_text_length,
                pad_token_id=PAD_ID, bos_token_id=EOS_ID, eos_token_id=EOS_ID, projection_size=hidden_size)
    vision = _vision_kwargs(image_size, patch_size, hidden_size, num_layers, num_heads)
    model = T.SiglipModel(T.SiglipConfig(text_config=text, vision_config=vision))
    with torch.no_grad():
        # t' = log 10 as in the paper; b at the log-odds of a random pair being positive, -log(B - 1),
        # which is the paper's b = -10 at its batch of 32k and about -4 at the demo's 64
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-math.log(max(min(batch_size, len(pixels)) - 1, 1)))
    norm = _normaliser("siglip")
    groups = caption_id if positive_groups is None else torch.as_tensor(np.asarray(positive_groups), dtype=torch.long)
    if groups.shape != (len(pixels),):
        raise ValueError(f"positive_groups must be (N,) = ({len(pixels)},), got {tuple(groups.shape)}")

    def images(x: torch.Tensor) -> torch.Tensor:
        return model.get_image_features(pixel_values=norm(x)).pooler_output

    def texts(ids: torch.Tensor) -> torch.Tensor:
        return model.get_text_features(input_ids=ids).pooler_output  # no attention mask, as in zero-shot

    def step_loss(index: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        # each distinct caption in the batch goes through the text tower once
        present, cid = torch.unique(caption_id[index], return_inverse=True)
        group = groups[index]
        same = group[:, None] == group[None, :]
        return _siglip_loss(images(_batch(pixels, index, flip)), texts(tokens[present])[cid], same,
                            model.logit_scale, model.logit_bias)

    model.train()
    logit = [model.logit_scale, model.logit_bias]
    rest = [p for p in model.parameters() if all(p is not q for q in logit)]
    params = [{"params": rest}, {"params": logit, "weight_decay": 0.0}]
    losses = _fit(step_loss, params, len(pixels), steps=steps, batch_size=batch_size,
                  lr=lr, weight_decay=weight_decay, seed=seed)
    model.eval()
    check = slice(0, min(len(pixels), 2000))
    img = F.normalize(_in_batches(images, pixels[check]), dim=-1)
    retrieval = (img @ F.normalize(_in_batches(texts, tokens), dim=-1).T).argmax(1) == caption_id[check]
    metrics = {"retrieval_top1": float(retrieval.float().mean()), "distinct_captions": len(distinct)}
    if class_names and train_labels is not None:
        labels = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)[check]
        classifier, scale, bias = build_siglip_classifier(model, tokenizer, class_names, load_templates("single"),
                                                          max_length=max_text_length)
        predicted = zeroshot_logits(img, classifier, scale, bias).argmax(1)
        metrics["zero_shot_accuracy"] = float((predicted == labels).float().mean())
    summary = _summary("siglip", losses, started, num_images=len(pixels), vocab_size=len(tokenizer), seed=seed,
                       **metrics)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_preprocessor(tmp, "siglip", image_size)
        write_json(tmp / SUMMARY_FILE, summary)

    _save_atomically(Path(out_dir), write)
    return summary


def build_demo_teacher(
    family: str, out_dir: str | os.PathLike, *, seed: int, image_size: int, num_images: int,
    num_shape_classes: int, threads: int | None = None, **train_kwargs: Any,
) -> dict[str, Any]:
    """Generate the family's training data from the synthetic world's generators and train it.

    The Snakemake entry point: ``train_kwargs`` are the architecture / optimisation keywords of
    ``train_classifier_teacher`` or ``train_siglip_teacher`` (patch_size, hidden_size, num_layers,
    num_heads, steps, batch_size, lr, ...). The data seed is ``seed``; the init / shuffle seed too.
    ``threads``: torch intra-op threads while training (the rule's ``threads``).
    """
    if family not in DEMO_FAMILIES:
        raise ValueError(f"unknown demo teacher family {family!r}; choose one of {DEMO_FAMILIES}")
    data = dict(seed=seed, stream=TEACHER_STREAMS[family], num_images=num_images, image_size=image_size,
                num_shape_classes=num_shape_classes)
    with torch_threads(threads):
        if family == "siglip":
            images, captions, labels, names = demo_caption_pairs(**data)
            return train_siglip_teacher(out_dir, train_images=images, captions=captions, image_size=image_size,
                                        class_names=names, train_labels=labels, positive_groups=labels, seed=seed,
                                        **train_kwargs)
        images, labels, _ = demo_labelled_images(**data)
        return train_classifier_teacher(family, out_dir, train_images=images, train_labels=labels,
                                        image_size=image_size, seed=seed, **train_kwargs)
