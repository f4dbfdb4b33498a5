"""The SigLIP teacher's text tower, carried by its student so that a text prompt can be explained.

A SigLIP student saved with a text tower holds it in the ``text`` subfolder of its directory: a
``transformers`` ``SiglipTextModel`` and its tokenizer, each written by its own
``save_pretrained`` (so ``AutoModel`` / ``AutoTokenizer`` read the subfolder too). The folder's
own weights file stays the student's alone: the backbone checksum
(``aloe.models.checksums.checkpoint_checksum``) does not change with the text tower.

A prompt's embedding is what zero-shot scoring uses (``aloe.eval.zeroshot``): the canonicalised
prompt, tokenised to ``padding="max_length"``, the text tower's pooled output, L2-normalised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import transformers
from torch import nn

from aloe.eval.zeroshot import classifier_from_text_embeddings, siglip_text_embeddings
from aloe.io import atomic_dir

TEXT_DIR = "text"


@dataclass
class TextTower:
    """A plain holder (not a module): attached to a student it does not enter the student's weights."""

    model: nn.Module  # transformers.SiglipTextModel
    tokenizer: Any

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """(P, D) float32 unit-norm text embeddings of ``prompts``, as zero-shot builds its classifier."""
        emb = siglip_text_embeddings(self.model, self.tokenizer, list(prompts), ["{}"], device=self.device)
        return classifier_from_text_embeddings(emb).T.contiguous()


def text_tower_from(text_model: Any, tokenizer: Any = None) -> TextTower:
    """A ``TextTower`` from a ``SiglipTextModel``, a ``SiglipModel`` (its text half, shared, not
    copied) or an aloe SigLIP ``Teacher`` (its model and tokenizer)."""
    if isinstance(text_model, TextTower):
        return text_model
    if hasattr(text_model, "hf_model"):  # an aloe Teacher
        tokenizer = tokenizer if tokenizer is not None else text_model.tokenizer
        text_model = text_model.hf_model
    if tokenizer is None:
        raise ValueError("a text tower needs its tokenizer: pass tokenizer=")
    if isinstance(text_model, transformers.SiglipModel):
        text_model = text_model.text_model  # a SiglipTextModel of its own
    if not isinstance(text_model, transformers.SiglipTextModel):
        raise TypeError(f"text_model must be a SiglipTextModel, a SiglipModel or a SigLIP Teacher, got "
                        f"{type(text_model).__name__}")
    for p in text_model.parameters():
        p.requires_grad_(False)
    return TextTower(text_model.eval(), tokenizer)


def save_text_tower(tower: TextTower, directory: str | os.PathLike) -> None:
    """Write the tower to ``directory/text`` (replacing what is there, atomically)."""
    with atomic_dir(Path(directory) / TEXT_DIR) as tmp:
        tower.model.save_pretrained(tmp)
        tower.tokenizer.save_pretrained(tmp)


def load_text_tower(directory: str | os.PathLike) -> Optional[TextTower]:
    """The tower saved in ``directory/text``, or None when the student has none."""
    folder = Path(directory) / TEXT_DIR
    if not (folder / "config.json").is_file():
        return None
    hub = dict(local_files_only=True, trust_remote_code=False)
    try:
        model = transformers.SiglipTextModel.from_pretrained(str(folder), use_safetensors=True, **hub)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), **hub)
    except (OSError, ValueError) as err:
        raise ValueError(f"student text tower {folder} cannot be read: {err}") from err
    return text_tower_from(model, tokenizer)
