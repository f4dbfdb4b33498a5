"""Tiny random teachers of each family, saved with save_pretrained (no network)."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as T

IMAGE, PATCH = 32, 8


def tiny_config(family: str, hidden: int = 32, layers: int = 3, heads: int = 2, text_positions: int = 16):
    common = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=2 * hidden, image_size=IMAGE, patch_size=PATCH)
    if family == "vit":
        return T.ViTConfig(**common)
    if family == "dinov3":
        return T.DINOv3ViTConfig(**common, num_register_tokens=4, layerscale_value=0.5)
    if family == "dinov3_gated":
        return T.DINOv3ViTConfig(**common, num_register_tokens=2, use_gated_mlp=True, hidden_act="silu")
    if family == "siglip":
        text = dict(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads, intermediate_size=2 * hidden,
                    vocab_size=64, max_position_embeddings=text_positions, bos_token_id=1, eos_token_id=2,
                    pad_token_id=0)
        return T.SiglipConfig(text_config=text, vision_config=common)
    raise ValueError(family)


def make_teacher_dir(family: str, directory: Path, seed: int = 0, zero_biases: bool = False, **kw) -> Path:
    torch.manual_seed(seed)
    cfg = tiny_config(family, **kw)
    model = {"vit": T.ViTModel, "siglip": T.SiglipModel}.get(family, T.DINOv3ViTModel)(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and zero_biases:
                p.zero_()
            elif name.endswith(("layernorm_before.weight", "layernorm_after.weight", "norm1.weight", "norm2.weight",
                                "layer_norm1.weight", "layer_norm2.weight")):
                p.normal_(1.0, 0.2)  # non-trivial norm scales so a mis-mapped tensor shows
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    return directory
