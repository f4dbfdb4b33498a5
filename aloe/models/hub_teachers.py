"""The paper's hub teachers as published: config.json and preprocessor values per hub id, and
random-weight models built from them (so the real architectures can be checked without the hub).

Where the values come from
--------------------------
- ``google/vit-base-patch16-224``: ``ViTConfig`` defaults (transformers
  ``models/vit/configuration_vit.py``: 224 px, patch 16, 768 wide, 12 layers, 12 heads, 3072 MLP,
  GELU, LayerNorm eps 1e-12, qkv bias), saved from ``ViTForImageClassification`` with the 1000
  ImageNet-1k classes (the hub card: "fine-tuned on ImageNet 2012"). Preprocessing: mean = std =
  0.5, size 224 (the ``preprocessor_config.json`` of the google ViT repos).
- SigLIP 2 fixed resolution (``google/siglip2-*-patch16-*``): transformers
  ``models/siglip/convert_siglip_to_hf.py`` (the SigLIP 2 fixed-resolution checkpoints are
  converted to the SigLIP v1 classes, ``model_type`` "siglip"): ``MODEL_CONFIGS`` sizes (base
  768/3072/12/12, large 1024/4096/24/16, so400m 1152/4304/27/16) for BOTH towers, text
  ``vocab_size`` 256000, vision ``image_size`` / ``patch_size`` from the checkpoint name, all other
  fields ``SiglipTextConfig`` / ``SiglipVisionConfig`` defaults (hidden_act gelu_pytorch_tanh,
  layer_norm_eps 1e-6, text ``max_position_embeddings`` 64, the MAP head ``vision_use_head``).
  Preprocessing: ``SiglipImageProcessor(size={"height": S, "width": S}, resample=2)`` of the same
  script, mean = std = 0.5 (its defaults).
- DINOv3 ViT (``facebook/dinov3-vit{s,b,l}16-pretrain-lvd1689m``): transformers
  ``models/dinov3_vit/convert_dinov3_vit_to_hf.py`` ``get_dinov3_config``: patch 16, 4 register
  tokens, layerscale_value 1.0, mlp_ratio 4, layer_norm_eps 1e-5, no SwiGLU for S/B/L, and the
  original repo's ``mask_k_bias=True`` / ``qkv_bias=True`` / ``pos_embed_rope_base=100`` /
  ``pos_embed_rope_rescale_coords=2``, which the published ``config.json`` spells in
  ``DINOv3ViTConfig`` names: ``key_bias=False``, ``query_bias=value_bias=True``, ``rope_theta=100``,
  ``pos_embed_rescale=2.0`` (a training-time augmentation; unused at eval). Image size 224;
  preprocessing ``DINOv3ViTImageProcessorFast`` 224x224 bilinear with ImageNet mean / std.

Named assumptions (not verified against the hub files themselves, which this project cannot reach)
-------------------------------------------------------------------------------------------------
- A1: the hub ``config.json`` files hold exactly the values above; fields not listed are the
  transformers defaults of the config class (e.g. SigLIP text ``pad/bos/eos_token_id``).
- A2: ``google/vit-base-patch16-224`` lists 1000 ImageNet class names in ``id2label``; we write
  ``LABEL_0 .. LABEL_999`` (aloe reads neither the names nor the classifier).
- A3: ``google/vit-base-patch16-224``'s ``preprocessor_config.json`` has the keys of the in21k
  repo (do_normalize, do_resize, image_mean, image_std, size 224).
- A4: the SigLIP 2 Gemma tokenizer (256k SentencePiece) cannot be built offline; a substitute
  tokenizer with ids below the text vocabulary can be saved beside the weights (``save_to_hub_cache``).
- A5: the hub stores single-file ``model.safetensors`` weights; ``save_pretrained`` may shard
  larger models, which transformers reads the same way.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import transformers as T

from aloe.io import write_json
from aloe.models.demo_tokenizer import EOS_ID, PAD_ID
from aloe.models.hub_cache import write_snapshot
from aloe.models.teacher import FAMILIES, HALF, IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class HubTeacher:
    hub_id: str
    model_type: str  # config.model_type, the key of aloe.models.teacher.FAMILIES
    architecture: str  # the transformers class the hub weights were saved from (config "architectures")
    config: Mapping[str, Any]  # published config kwargs; SigLIP: {"text_config": {...}, "vision_config": {...}}
    preprocessing: Mapping[str, Any]  # published preprocessor_config.json values (size at the published resolution)
    source: str  # where the values come from
    gated: bool = False  # the hub asks to accept a licence (and an HF_TOKEN) before download

    @property
    def family(self) -> str:
        return FAMILIES[self.model_type].family

    @property
    def hf_class(self) -> str:
        """The class ``load_teacher`` loads the checkpoint with."""
        return FAMILIES[self.model_type].hf_class

    @property
    def vision_config(self) -> Mapping[str, Any]:
        return self.config["vision_config"] if self.model_type == "siglip" else self.config


_VIT_SRC = "transformers ViTConfig defaults; ViTForImageClassification (ImageNet-1k) per the hub card"
_SIGLIP_SRC = ("transformers models/siglip/convert_siglip_to_hf.py (MODEL_CONFIGS, get_siglip_config, "
               "get_image_processor)")
_DINO_SRC = "transformers models/dinov3_vit/convert_dinov3_vit_to_hf.py (get_dinov3_config, get_image_processor)"

_VIT_B16 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                initializer_range=0.02, layer_norm_eps=1e-12, image_size=224, patch_size=16, num_channels=3,
                qkv_bias=True, encoder_stride=16, num_labels=1000)

# convert_siglip_to_hf.py MODEL_CONFIGS: (hidden, intermediate, layers, heads), the same for both towers
_SIGLIP_SIZES = {"base": (768, 3072, 12, 12), "large": (1024, 4096, 24, 16), "so400m": (1152, 4304, 27, 16)}
_SIGLIP_COMMON = dict(hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, attention_dropout=0.0)

# convert_dinov3_vit_to_hf.py get_dinov3_config: (hidden, layers, heads); intermediate = mlp_ratio 4 x hidden
_DINO_SIZES = {"s": (384, 12, 6), "b": (768, 12, 12), "l": (1024, 24, 16)}
_DINO_COMMON = dict(patch_size=16, image_size=224, num_channels=3, hidden_act="gelu", layer_norm_eps=1e-5,
                    layerscale_value=1.0, num_register_tokens=4, use_gated_mlp=False, rope_theta=100.0,
                    query_bias=True, key_bias=False, value_bias=True, proj_bias=True, mlp_bias=True,
                    pos_embed_shift=None, pos_embed_jitter=None, pos_embed_rescale=2.0,
                    attention_dropout=0.0, drop_path_rate=0.0, initializer_range=0.02)


def _processor(kind: str, size: int, mean, std) -> dict[str, Any]:
    return {"image_processor_type": kind, "image_mean": list(mean), "image_std": list(std),
            "size": {"height": size, "width": size}, "do_resize": True, "resample": 2, "do_rescale": True,
            "rescale_factor": 1 / 255, "do_normalize": True}


def _siglip2(variant: str, image_size: int) -> HubTeacher:
    hidden, intermediate, layers, heads = _SIGLIP_SIZES[variant]
    tower = dict(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                 num_attention_heads=heads, **_SIGLIP_COMMON)
    config = {"text_config": dict(tower, vocab_size=256000, max_position_embeddings=64),
              "vision_config": dict(tower, image_size=image_size, patch_size=16, num_channels=3, vision_use_head=True)}
    return HubTeacher(f"google/siglip2-{variant}-patch16-{image_size}", "siglip", "SiglipModel", config,
                      _processor("SiglipImageProcessor", image_size, HALF, HALF), _SIGLIP_SRC)


def _dinov3(size: str) -> HubTeacher:
    hidden, layers, heads = _DINO_SIZES[size]
    config = dict(_DINO_COMMON, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                  num_attention_heads=heads)
    return HubTeacher(f"facebook/dinov3-vit{size}16-pretrain-lvd1689m", "dinov3_vit", "DINOv3ViTModel", config,
                      _processor("DINOv3ViTImageProcessorFast", 224, IMAGENET_MEAN, IMAGENET_STD), _DINO_SRC,
                      gated=True)


_VIT_PROCESSOR = {"do_normalize": True, "do_resize": True, "image_mean": list(HALF), "image_std": list(HALF),
                  "size": 224}  # the in21k repo's file (assumption A3)
_ALL = [HubTeacher("google/vit-base-patch16-224", "vit", "ViTForImageClassification", _VIT_B16, _VIT_PROCESSOR,
                   _VIT_SRC),
        _siglip2("base", 224), _siglip2("large", 256), _siglip2("so400m", 256), _siglip2("so400m", 384),
        _dinov3("s"), _dinov3("b"), _dinov3("l")]
HUB_TEACHERS: dict[str, HubTeacher] = {t.hub_id: t for t in _ALL}

# "tiny": every architecture flag, the real depth and patch size, a small width and image
TINY_WIDTH = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, image_size=32)
TINY_TEXT = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2, vocab_size=256,
                 pad_token_id=PAD_ID, bos_token_id=EOS_ID, eos_token_id=EOS_ID)  # as the demo SigLIP
SIZES = ("published", "tiny")


def hub_teacher(hub_id: str) -> HubTeacher:
    try:
        return HUB_TEACHERS[hub_id]
    except KeyError:
        raise KeyError(f"{hub_id!r} is not a known hub teacher; known: {sorted(HUB_TEACHERS)}") from None


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any], cls: type, what: str) -> dict[str, Any]:
    known = set(getattr(cls, "__dataclass_fields__", {}))  # transformers 5 configs are dataclasses
    unknown = sorted(k for k in overrides if k not in known and not hasattr(cls, k))
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown} for {cls.__name__}")
    return {**base, **overrides}


def teacher_config(hub_id: str, size: str = "published", **overrides: Any) -> T.PretrainedConfig:
    """The transformers config of ``hub_id`` at ``size``; ``overrides`` replace config fields (for
    SigLIP: vision fields, and ``text_config={...}`` for the text tower)."""
    spec = hub_teacher(hub_id)
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    config = copy.deepcopy(dict(spec.config))
    if spec.model_type != "siglip":
        if "text_config" in overrides:
            raise ValueError(f"{hub_id} has no text tower; text_config cannot be overridden")
        cls = T.ViTConfig if spec.model_type == "vit" else T.DINOv3ViTConfig
        tiny = TINY_WIDTH if size == "tiny" else {}
        return cls(**_merge(_merge(config, tiny, cls, "vision"), overrides, cls, "vision"))
    text_overrides = dict(overrides.pop("text_config", None) or {})
    vision, text = config["vision_config"], config["text_config"]
    if size == "tiny":
        vision, text = {**vision, **TINY_WIDTH}, {**text, **TINY_TEXT}
    vision = _merge(vision, overrides, T.SiglipVisionConfig, "vision")
    text = _merge(text, text_overrides, T.SiglipTextConfig, "text")
    return T.SiglipConfig(text_config=text, vision_config=vision)


def build_teacher_model(hub_id: str, *, seed: int = 0, size: str = "published", **overrides: Any) -> torch.nn.Module:
    """A random-weight model of ``hub_id``'s published architecture class (HF's own initialisation,
    seeded without touching the global RNG). ``size="tiny"``: the same class and every architecture
    flag, the real depth and patch size, width 32 / 2 heads / MLP 64 at 32 px, a 2-layer text tower of
    256 tokens for SigLIP. ``overrides`` replace config fields (see :func:`teacher_config`)."""
    config = teacher_config(hub_id, size, **overrides)
    cls = getattr(T, hub_teacher(hub_id).architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    return model.eval()


def preprocessor_config(hub_id: str, image_size: int | None = None) -> dict[str, Any]:
    """The published ``preprocessor_config.json`` values, with the size set to ``image_size``
    (the model's resolution, e.g. 32 for a tiny build)."""
    values = copy.deepcopy(dict(hub_teacher(hub_id).preprocessing))
    if image_size is not None:
        values["size"] = image_size if isinstance(values["size"], int) else {"height": image_size, "width": image_size}
    return values


def save_to_hub_cache(model: torch.nn.Module, hub_id: str, cache_dir: str | os.PathLike, *, tokenizer: Any = None,
                      revision_hash: str | None = None) -> Path:
    """Save ``model`` (safetensors), the published ``preprocessor_config.json`` at the model's image
    size and ``tokenizer`` (if given) as the hub snapshot of ``hub_id`` under ``cache_dir`` (the
    huggingface_hub cache layout, see :mod:`aloe.models.hub_cache`); returns the snapshot folder.
    ``transformers`` (and ``load_teacher(hub_id, cache_dir=cache_dir)``) then find it offline."""
    spec = hub_teacher(hub_id)
    if model.config.model_type != spec.model_type:
        raise ValueError(f"{hub_id} is a {spec.model_type!r} model, got a {model.config.model_type!r} model")
    vision = getattr(model.config, "vision_config", model.config)
    if tokenizer is not None:
        if spec.model_type != "siglip":
            raise ValueError(f"{hub_id} has no text tower; it takes no tokenizer")
        if len(tokenizer) > model.config.text_config.vocab_size:
            raise ValueError(f"tokenizer has {len(tokenizer)} tokens, the text tower only "
                             f"{model.config.text_config.vocab_size} (build it with text_config={{'vocab_size': ...}})")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".aloe-save-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        write_json(Path(tmp) / "preprocessor_config.json", preprocessor_config(hub_id, int(vision.image_size)))
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        return write_snapshot(Path(tmp), hub_id, cache_dir, revision=revision_hash)


def vision_tower(model: torch.nn.Module) -> torch.nn.Module:
    """The part of a hub model that ``load_teacher`` reads as the vision encoder: SigLIP's
    ``vision_model``, ``ViTForImageClassification.vit``, or the whole DINOv3 / ViT model."""
    for name in ("vision_model", "vit"):
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return getattr(model, name)
    return model
