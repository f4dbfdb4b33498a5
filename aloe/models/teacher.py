"""Frozen teachers: HF vision encoders loaded offline from a hub id or a local directory.

One code path for all three families; the family is read from the checkpoint's
``config.model_type``, never from Python class names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

import torch
import transformers
from huggingface_hub import constants as hf_constants
from torch import nn
from transformers.utils import cached_file

from aloe.models.outputs import EncoderOutput


@dataclass(frozen=True)
class FamilySpec:
    family: str
    hf_class: str  # attribute of the transformers package
    num_cls: int
    default_mean: tuple[float, float, float]
    default_std: tuple[float, float, float]


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
ENV_TRUE = {"1", "ON", "YES", "TRUE"}

# config.model_type -> how to load and read it
FAMILIES: dict[str, FamilySpec] = {
    "vit": FamilySpec("vit", "ViTModel", 1, HALF, HALF),
    "dinov3_vit": FamilySpec("dinov3", "DINOv3ViTModel", 1, IMAGENET_MEAN, IMAGENET_STD),
    "siglip": FamilySpec("siglip", "SiglipModel", 0, HALF, HALF),
    "siglip_vision_model": FamilySpec("siglip", "SiglipVisionModel", 0, HALF, HALF),
}


def _optional_file(name_or_path: str, filename: str, cache_dir: Optional[str] = None) -> Optional[str]:
    return cached_file(name_or_path, filename, cache_dir=cache_dir, local_files_only=_offline(),
                       _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)


def _preprocessing(name_or_path: str, spec: FamilySpec, cache_dir: Optional[str] = None) -> tuple[tuple, tuple, str]:
    path = _optional_file(name_or_path, "preprocessor_config.json", cache_dir)
    if path is None:
        return spec.default_mean, spec.default_std, f"{spec.family} defaults"
    cfg = json.loads(open(path).read())
    return tuple(cfg.get("image_mean", spec.default_mean)), tuple(cfg.get("image_std", spec.default_std)), path


class Teacher(nn.Module):
    """A frozen HF encoder that takes raw RGB in [0, 1] and returns an :class:`EncoderOutput`."""

    def __init__(self, hf_model: nn.Module, family: str, mean, std, source: str, tokenizer=None):
        super().__init__()
        self.hf_model = hf_model
        self.family = family
        self.source = source
        self.tokenizer = tokenizer
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        # float64 so that a float64 teacher normalises exactly; preprocess casts to the pixel dtype
        mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (self.mean, self.std))
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        for p in self.hf_model.parameters():
            p.requires_grad_(False)
        self.eval()

    @property
    def vision(self) -> nn.Module:
        """The vision encoder (the whole model for ViT and DINOv3, ``vision_model`` for SigLIP)."""
        return getattr(self.hf_model, "vision_model", self.hf_model)

    @property
    def vision_config(self):
        return self.vision.config

    image_size = property(lambda self: int(self.vision_config.image_size))
    patch_size = property(lambda self: int(self.vision_config.patch_size))
    hidden_size = property(lambda self: int(self.vision_config.hidden_size))
    num_layers = property(lambda self: int(self.vision_config.num_hidden_layers))
    num_registers = property(lambda self: int(getattr(self.vision_config, "num_register_tokens", 0)))

    @property
    def num_prefix_tokens(self) -> int:
        return (0 if self.family == "siglip" else 1) + self.num_registers

    @property
    def final_norm(self) -> nn.Module:
        """The norm the encoder applies to its last block's tokens (DINOv2's linear evaluation
        applies it to earlier blocks' class tokens too); explicit per family."""
        names = {"vit": "layernorm", "dinov3": "norm", "siglip": "post_layernorm"}
        return getattr(self.vision, names[self.family])

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)  # a teacher never leaves eval mode

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected RGB pixels of shape (N, 3, H, W), got {tuple(pixels.shape)}")
        return (pixels - self.pixel_mean.to(pixels.dtype)) / self.pixel_std.to(pixels.dtype)

    def forward(self, pixels: torch.Tensor, output_hidden_states: bool = False) -> EncoderOutput:
        out = self.vision(pixel_values=self.preprocess(pixels), output_hidden_states=output_hidden_states)
        last = out.last_hidden_state
        pooled = last[:, 0] if self.family == "vit" else out.pooler_output
        hidden = tuple(out.hidden_states) if output_hidden_states else None
        return EncoderOutput(last, pooled, hidden)


def load_teacher(name_or_path: str | os.PathLike, dtype: torch.dtype = torch.float32, *,
                 cache_dir: str | os.PathLike | None = None) -> Teacher:
    """Load a frozen teacher from a hub id or a local ``save_pretrained`` directory.

    Hub ids are read from the Hugging Face cache: ``cache_dir`` (a huggingface_hub cache folder,
    e.g. ``$HF_HOME/hub``) or, when ``None``, the default one. With ``HF_HUB_OFFLINE=1`` nothing is
    downloaded; a missing id raises :class:`FileNotFoundError` saying how to pre-download it.
    """
    name_or_path = str(name_or_path)
    cache = None if cache_dir is None else str(cache_dir)
    hub = dict(cache_dir=cache, local_files_only=_offline(), trust_remote_code=False)
    try:
        config = transformers.AutoConfig.from_pretrained(name_or_path, **hub)
    except OSError as err:
        raise FileNotFoundError(_not_found(name_or_path, cache, err)) from err
    spec = FAMILIES.get(config.model_type)
    if spec is None:
        raise ValueError(f"teacher {name_or_path!r} has model_type {config.model_type!r}; "
                         f"supported: {sorted(FAMILIES)}")
    hf_class = getattr(transformers, spec.hf_class)
    try:
        model = hf_class.from_pretrained(name_or_path, dtype=dtype, use_safetensors=True, **hub)
    except OSError as err:  # e.g. the config is cached but the (gated) weights are not
        raise FileNotFoundError(_not_found(name_or_path, cache, err)) from err
    mean, std, _ = _preprocessing(name_or_path, spec, cache)
    tokenizer = None
    if spec.hf_class == "SiglipModel" and _optional_file(name_or_path, "tokenizer_config.json", cache) is not None:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path, **hub)
    return Teacher(model, spec.family, mean, std, source=name_or_path, tokenizer=tokenizer)


def _offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ENV_TRUE or bool(hf_constants.HF_HUB_OFFLINE)


def _not_found(name: str, cache_dir: Optional[str], err: Exception) -> str:
    cache = cache_dir or hf_constants.HF_HUB_CACHE
    return (f"cannot load teacher {name!r}: it is neither a local save_pretrained directory nor a hub id whose "
            f"config and safetensors weights are in the Hugging Face cache {cache} "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}). Pre-download it where there is network: "
            f"`hf download {name} --cache-dir {cache}` (older huggingface_hub: `huggingface-cli download {name} "
            f"--cache-dir {cache}`), or set HF_HOME so that $HF_HOME/hub holds it. DINOv3 weights "
            f"(facebook/dinov3-*) are gated: accept the licence on https://huggingface.co/{name} and set HF_TOKEN "
            f"before downloading. ({type(err).__name__}: {err})")
