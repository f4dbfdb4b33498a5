"""Zero-shot metadata shipped as data files in ``aloe/data/meta/``.

- ``imagenet1k_classes.json``: the 1000 OpenCLIP ImageNet class names, index i = the class whose
  WordNet id is the i-th in sorted order (the usual ImageNet label order);
- ``cifar10_classes.json``, ``cifar100_classes.json``: the datasets' label names (underscores
  replaced by spaces);
- ``templates.json``: ``single`` = ["a photo of a {}."] and ``openclip_imagenet`` = the 80
  OpenAI/OpenCLIP ImageNet templates; ``{}`` is the class-name slot.

``canonicalize_text`` is the text normalisation of SigLIP's zero-shot evaluation (big_vision's
``prompt_engineering.canonicalize_text``, which OpenCLIP's SigLIP/SigLIP2 tokenizers apply to every
prompt as ``clean="canonicalize"``): underscores become spaces, ASCII punctuation
(``string.punctuation``, hyphens and apostrophes included) is deleted, not replaced by a space,
the text is lowercased and whitespace runs become one space, stripped at both ends. OpenCLIP
cleans the whole formatted prompt this way (after ftfy/HTML unescaping, a no-op on the ASCII
names and templates shipped here); big_vision cleans names (keeping ",") and templates (keeping
"{}") separately, the same text for names without commas, as all shipped names are.
"""

from __future__ import annotations

import json
import string
from functools import lru_cache
from pathlib import Path

META_DIR = Path(__file__).parent / "meta"
TEMPLATE_SETS = ("single", "openclip_imagenet")
_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


@lru_cache(maxsize=None)
def _read(name: str) -> dict:
    return json.loads((META_DIR / name).read_text())


def load_class_names(dataset: str) -> list[str]:
    """Class names for ``imagenet1k``, ``cifar10`` or ``cifar100``."""
    path = META_DIR / f"{dataset}_classes.json"
    if not path.is_file():
        known = sorted(p.name[: -len("_classes.json")] for p in META_DIR.glob("*_classes.json"))
        raise KeyError(f"no shipped class names for {dataset!r}; available: {known}")
    return list(_read(path.name)["class_names"])


def load_templates(name: str) -> list[str]:
    if name not in TEMPLATE_SETS:
        raise KeyError(f"unknown template set {name!r}; choose one of {TEMPLATE_SETS}")
    return list(_read("templates.json")[name])


def format_prompts(class_names: list[str], templates: list[str]) -> list[list[str]]:
    """prompts[c][t] = templates[t] filled with class_names[c]."""
    return [[t.format(c) for t in templates] for c in class_names]


def canonicalize_text(text: str) -> str:
    """SigLIP's prompt normalisation, e.g. "a photo of a T-shirt." -> "a photo of a tshirt"."""
    return " ".join(text.replace("_", " ").translate(_DELETE_PUNCTUATION).lower().split())
