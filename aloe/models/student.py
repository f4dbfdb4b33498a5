"""The B-cos student: a bias-free, dynamic-linear ViT that mirrors its teacher token for token."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from aloe.bcos import (AttentionPooling, BcosConv2d, BcosConvStem, BcosLayerNorm, DynamicAttention, GatedMlp, Mlp,
                       to_six_channel)
from aloe.models.outputs import EncoderOutput
from aloe.models.pixels import check_pixels
from aloe.models.rope import apply_rope, rope_inv_freq, rope_tables
from aloe.models.student_config import StudentConfig
from aloe.models.student_files import check_state_dict, read_student_weights, save_student, student_file_paths

# Parameters that enter the network as additive inputs rather than weights: explanations report
# their contribution separately (image part + constant part = output).
CONSTANT_INPUTS = ("cls_token", "register_tokens", "pos_embed")


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        d = cfg.hidden_size
        self.norm1 = BcosLayerNorm(d, eps=cfg.eps)
        self.attn = DynamicAttention(d, cfg.num_heads, b=cfg.b, form=cfg.bcos_form)
        self.norm2 = BcosLayerNorm(d, eps=cfg.eps)
        mlp = GatedMlp if cfg.gated_mlp else Mlp
        self.mlp = mlp(d, cfg.intermediate_size, cfg.act, b=cfg.b, form=cfg.bcos_form)
        self.ls1 = LayerScale(d) if cfg.layerscale else nn.Identity()
        self.ls2 = LayerScale(d) if cfg.layerscale else nn.Identity()

    def forward(self, x: torch.Tensor, rotary=None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rotary=rotary))
        return x + self.ls2(self.mlp(self.norm2(x)))


class BcosStudent(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.config = cfg
        d = cfg.hidden_size
        if cfg.stem == "linear":
            self.patch_embed = BcosConv2d(6, d, cfg.patch_size, stride=cfg.patch_size, b=cfg.b, form=cfg.bcos_form)
        else:
            self.patch_embed = BcosConvStem(d, cfg.patch_size, b=cfg.b, eps=cfg.eps, form=cfg.bcos_form)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if cfg.use_cls else None
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_registers, d)) if cfg.num_registers else None
        self.pos_embed = None
        if cfg.position == "learned":
            n_pos = cfg.num_patches + int(cfg.use_cls)
            self.pos_embed = nn.Parameter(torch.zeros(1, n_pos, d))
        elif cfg.position == "rope":
            self.register_buffer("rope_inv_freq", rope_inv_freq(d // cfg.num_heads, cfg.rope_theta), persistent=False)
        else:
            raise ValueError(f"position must be 'learned' or 'rope', got {cfg.position!r}")
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = BcosLayerNorm(d, eps=cfg.eps)
        self.head = None
        if cfg.pooling == "map":
            self.head = AttentionPooling(d, cfg.num_heads, cfg.intermediate_size, cfg.act, cfg.eps, b=cfg.b,
                                         form=cfg.bcos_form)
        elif cfg.pooling != "cls":
            raise ValueError(f"pooling must be 'cls' or 'map', got {cfg.pooling!r}")

    # attributes mirrored from the teacher, so stages can treat both the same way
    family = property(lambda self: self.config.family)
    image_size = property(lambda self: self.config.image_size)
    patch_size = property(lambda self: self.config.patch_size)
    hidden_size = property(lambda self: self.config.hidden_size)
    num_layers = property(lambda self: self.config.num_layers)
    num_registers = property(lambda self: self.config.num_registers)
    num_prefix_tokens = property(lambda self: self.config.num_prefix_tokens)

    @property
    def final_norm(self) -> nn.Module:
        """The norm on the last block's tokens (the teacher's ``final_norm``, B-cos form)."""
        return self.norm

    @property
    def weight_dtype(self) -> torch.dtype:
        return self.norm.weight.dtype

    def constant_inputs(self, batch_size: int) -> dict[str, torch.Tensor]:
        """The additive constant inputs, expanded per sample (explain() differentiates through these)."""
        out = {}
        for name in CONSTANT_INPUTS:
            p = getattr(self, name)
            if p is not None:
                out[name] = p.expand(batch_size, *p.shape[1:])
        return out

    def embed(self, x6: torch.Tensor, constants: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        n, _, h, w = x6.shape
        if (h, w) != (self.config.image_size,) * 2:
            raise ValueError(f"student expects {self.config.image_size}x{self.config.image_size} images, got {h}x{w}")
        constants = self.constant_inputs(n) if constants is None else constants
        tokens = self.patch_embed(x6).flatten(2).transpose(1, 2)
        prefix = [constants[k] for k in ("cls_token", "register_tokens") if k in constants]
        if self.config.family == "vit":  # ViT adds positions to [CLS] and patches
            return torch.cat(prefix + [tokens], 1) + constants["pos_embed"]
        if "pos_embed" in constants:  # SigLIP: positions on patches only
            tokens = tokens + constants["pos_embed"]
        return torch.cat(prefix + [tokens], 1)

    def forward_six(self, x6: torch.Tensor, output_hidden_states: bool = False,
                    constants: Optional[dict[str, torch.Tensor]] = None) -> EncoderOutput:
        x = self.embed(x6, constants)
        rotary = None
        if self.config.position == "rope":
            cos, sin = rope_tables(self.config.image_size // self.config.patch_size, self.rope_inv_freq)
            rotary = partial(apply_rope, cos=cos, sin=sin, num_prefix=self.num_prefix_tokens)
        hidden = [x] if output_hidden_states else None
        for block in self.blocks:
            x = block(x, rotary=rotary)
            if hidden is not None:
                hidden.append(x)
        last = self.norm(x)
        pooled = last[:, 0] if self.head is None else self.head(last)
        return EncoderOutput(last, pooled, tuple(hidden) if hidden is not None else None)

    def forward(self, pixels: torch.Tensor, output_hidden_states: bool = False) -> EncoderOutput:
        """``pixels``: raw RGB (N, 3, H, W) in [0, 1], in the weights' dtype (checked: ``aloe.models.pixels``)."""
        check_pixels(pixels, self.weight_dtype)
        return self.forward_six(to_six_channel(pixels), output_hidden_states=output_hidden_states)

    def save_pretrained(self, directory: str | Path) -> None:
        save_student(self, directory)


def load_student(directory: str | Path, map_location: str | torch.device = "cpu") -> BcosStudent:
    """The student saved in ``directory`` (``save_pretrained``); errors name the missing, truncated
    or unreadable file, the config key that holds a bad value and the tensor that does not fit."""
    cfg_path, weights_path = student_file_paths(directory)
    student = BcosStudent(StudentConfig.from_json(cfg_path))
    state = read_student_weights(weights_path, map_location)
    check_state_dict(student.state_dict(), state, str(weights_path))
    student.load_state_dict(state, strict=True)
    return student.to(map_location)
