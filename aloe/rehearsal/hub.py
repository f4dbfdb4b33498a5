"""The rehearsal's model hub: every paper teacher under its real hub id in a local HF cache.

Each teacher is its published model class with every architecture flag of its published
configuration (``aloe.models.hub_teachers``), at tiny width and with random weights; SigLIP
teachers carry a word tokenizer whose vocabulary covers the zero-shot class names and templates
(a real SigLIP SentencePiece model cannot be had offline). Jobs read the cache offline through
the config's ``hub`` block, exactly as on a cluster whose shared cache was filled in advance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from aloe.data.zero_shot import TEMPLATE_SETS, load_class_names, load_templates
from aloe.models.demo_tokenizer import build_word_tokenizer
from aloe.models.hub_teachers import build_teacher_model, hub_teacher, save_to_hub_cache

TEXT_LENGTH = 64  # SigLIP's max_position_embeddings


def zero_shot_tokenizer():
    texts = [*load_class_names("imagenet1k"), *load_class_names("cifar10"), *load_class_names("cifar100"),
             *(t for name in TEMPLATE_SETS for t in load_templates(name))]
    return build_word_tokenizer(texts, max_length=TEXT_LENGTH)


def write_hub_cache(cache_dir: str | os.PathLike, hub_ids: Mapping[str, str], *, seed: int = 0) -> dict[str, str]:
    """Save a tiny random build of every teacher ``name -> hub id`` into the HF cache ``cache_dir``;
    return name -> snapshot folder."""
    snapshots, tokenizer = {}, None
    for i, (name, hub_id) in enumerate(sorted(hub_ids.items())):
        overrides, tok = {}, None
        if hub_teacher(hub_id).model_type == "siglip":
            tokenizer = tokenizer or zero_shot_tokenizer()
            tok = tokenizer
            overrides["text_config"] = {"vocab_size": len(tok), "max_position_embeddings": TEXT_LENGTH}
        model = build_teacher_model(hub_id, seed=seed + i, size="tiny", **overrides)
        snapshots[name] = str(save_to_hub_cache(model, hub_id, Path(cache_dir), tokenizer=tok))
    return snapshots
