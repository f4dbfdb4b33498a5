"""The B-cos student: a bias-free, dynamic-linear ViT that mirrors its teacher token for token.

A ``transformers`` model (``PreTrainedModel``, config ``StudentConfig``, ``model_type``
"aloe_bcos_student"): importing ``aloe.models`` registers it with ``AutoConfig``, ``AutoModel``
and ``AutoImageProcessor``, so ``AutoModel.from_pretrained(dir)`` gives a ``BcosStudent``.
Loading and saving are aloe's own, strict and canonical (``from_pretrained``, ``save_pretrained``;
``push_to_hub`` uploads what the latter writes, model card included). It takes images of any
size whose sides are multiples of the patch size: learned positions are interpolated as the HF
teachers do with ``interpolate_pos_encoding=True`` (``aloe.models.positions``), DINOv3's RoPE
covers any grid.
"""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from transformers import PreTrainedModel

from aloe.bcos import (AttentionPooling, BcosConv2d, BcosConvStem, BcosLayerNorm, DynamicAttention, GatedMlp, Mlp,
                       to_six_channel)
from aloe.models.heads import LinearHead, load_head
from aloe.models.image_processor import BcosImageProcessor
from aloe.models.outputs import EncoderOutput
from aloe.models.pixels import check_pixels
from aloe.models.positions import interpolate_positions, patch_grid
from aloe.models.rope import apply_rope, rope_inv_freq, rope_tables
from aloe.models.student_config import StudentConfig
from aloe.models.student_explain import explain_images
from aloe.models.student_files import (check_state_dict, read_image_processor, read_student_weights, save_student,
                                       student_file_paths)
from aloe.models.student_hub import HUB_ARGUMENTS, IGNORED_KWARGS, SAVE_IGNORED, resolve_student_dir, upload_folder
from aloe.models.text_tower import TextTower, load_text_tower, text_tower_from
from aloe.tensorfile import state_checksum

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


class BcosStudent(PreTrainedModel):
    config_class = StudentConfig
    base_model_prefix = "aloe_student"
    main_input_name = "pixel_values"

    def __init__(self, config: StudentConfig):
        super().__init__(config)
        cfg, d = config, config.hidden_size
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
        # plain attributes, not modules: they stay out of the weights (and the checkpoint checksum)
        self.image_processor = BcosImageProcessor.for_student(cfg)
        self.probe_head: Optional[LinearHead] = None
        self.text_tower: Optional[TextTower] = None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Keep each layer's own initialisation: ``bcosify`` seeds it and copies the teacher over it,
        and transformers' generic re-initialisation would change the fresh parts (a conv stem)."""

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
        grid = patch_grid(h, w, self.config.patch_size)
        if constants is None:  # positions once for the batch, not per sample
            constants = self.constant_inputs(n)
            if self.pos_embed is not None:
                constants["pos_embed"] = self.pos_embed
        tokens = self.patch_embed(x6).flatten(2).transpose(1, 2)
        prefix = [constants[k] for k in ("cls_token", "register_tokens") if k in constants]
        if self.config.family == "vit":  # ViT adds positions to [CLS] and patches
            return torch.cat(prefix + [tokens], 1) + interpolate_positions(constants["pos_embed"], grid, 1)
        if "pos_embed" in constants:  # SigLIP: positions on patches only
            tokens = tokens + interpolate_positions(constants["pos_embed"], grid, 0)
        return torch.cat(prefix + [tokens], 1)

    def forward_six(self, x6: torch.Tensor, output_hidden_states: bool = False,
                    constants: Optional[dict[str, torch.Tensor]] = None) -> EncoderOutput:
        x = self.embed(x6, constants)
        rotary = None
        if self.config.position == "rope":
            cos, sin = rope_tables(patch_grid(x6.shape[2], x6.shape[3], self.config.patch_size), self.rope_inv_freq)
            rotary = partial(apply_rope, cos=cos, sin=sin, num_prefix=self.num_prefix_tokens)
        hidden = [x] if output_hidden_states else None
        for block in self.blocks:
            x = block(x, rotary=rotary)
            if hidden is not None:
                hidden.append(x)
        last = self.norm(x)
        pooled = last[:, 0] if self.head is None else self.head(last)
        return EncoderOutput(last, pooled, tuple(hidden) if hidden is not None else None)

    def forward(self, pixels: Optional[torch.Tensor] = None, output_hidden_states: bool = False, *,
                pixel_values: Optional[torch.Tensor] = None) -> EncoderOutput:
        """``pixels`` (or ``pixel_values=``, the image processor's key): raw RGB (N, 3, H, W) in
        [0, 1], in the weights' dtype (checked: ``aloe.models.pixels``); H and W multiples of the
        patch size."""
        if (pixels is None) == (pixel_values is None):
            raise TypeError("pass the pixels once: student(pixels) or student(pixel_values=pixels)")
        pixels = pixels if pixels is not None else pixel_values
        check_pixels(pixels, self.weight_dtype)
        return self.forward_six(to_six_channel(pixels), output_hidden_states=output_hidden_states)

    def explain(self, images: Any, target: Any, head: Any = None):
        """W(x)·x of ``target`` on ``images`` in one call (``aloe.models.student_explain``): images
        as the image processor takes them (or a float pixel tensor (N, 3, H, W)); target a class
        index (int, or one per image) of a linear-probe head (``head=`` a path or ``load_head``'s
        object, else the attached one), a text prompt (SigLIP students with a text tower) or a
        function of the output as for ``aloe.explain``. Returns the ``Explanation`` with ``rgba``."""
        return explain_images(self, images, target, head)

    def attach_head(self, head: LinearHead | str | os.PathLike | None, check: bool = True) -> None:
        """Keep a linear-probe head for class targets (None detaches it). With ``check``, a head
        trained on other weights (its ``backbone_checksum`` metadata) is refused."""
        if head is not None and not isinstance(head, LinearHead):
            head = load_head(head)
        if head is not None:
            self.check_head(head, check)
        self.probe_head = head

    def check_head(self, head: LinearHead, check: bool = True) -> None:
        if head.in_features != self.hidden_size:
            raise ValueError(f"head {head.source or ''} takes {head.in_features} features, the student gives "
                             f"{self.hidden_size}")
        if check and head.backbone_checksum is not None and head.backbone_checksum not in self._checksums():
            raise ValueError(f"head {head.source or ''} was trained on features of another backbone (checksum "
                             "mismatch); pass check=False to use it anyway")

    def _checksums(self) -> set[str]:
        """Checksums of the weights as they are and as float32 (what the pipeline saves; a float32
        student converted to another float dtype converts back exactly)."""
        state = self.state_dict()
        as_saved = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        return {state_checksum(state), state_checksum(as_saved)}

    def attach_text_tower(self, text_model: Any, tokenizer: Any = None) -> None:
        """Keep the teacher's text tower (a SiglipTextModel or SiglipModel and its tokenizer, or a
        SigLIP ``Teacher``) for prompt targets; saved with the student by ``save_pretrained``."""
        if self.config.family != "siglip":
            raise ValueError(f"a text tower belongs to a SigLIP student, this one is {self.config.family!r}")
        self.text_tower = text_tower_from(text_model, tokenizer)

    def save_pretrained(self, save_directory: str | os.PathLike, *, teacher: Optional[str] = None,
                        alignment: Optional[dict] = None, results: Optional[dict] = None, text_model: Any = None,
                        tokenizer: Any = None, push_to_hub: bool = False, **kwargs: Any) -> None:
        """Write the student's directory (``aloe.models.student_files``). ``teacher`` (hub id),
        ``alignment`` and ``results`` are kept in the config (and the model card); ``text_model``
        and ``tokenizer`` attach the teacher's text tower first. transformers' serialisation options
        (``max_shard_size``, ``safe_serialization``, ...) are accepted and change nothing: one
        canonical safetensors file. ``push_to_hub=True`` then uploads the folder (``repo_id``,
        ``commit_message``, ``private``, ``token``, ``revision``, ``create_pr``)."""
        unknown = sorted(set(kwargs) - SAVE_IGNORED - set(HUB_ARGUMENTS))
        if unknown:
            raise TypeError(f"BcosStudent.save_pretrained() got unexpected arguments {unknown}")
        StudentConfig.check_metadata(teacher, alignment, results)
        for key, value in (("teacher", teacher), ("alignment", alignment), ("results", results)):
            if value is not None:
                setattr(self.config, key, value)
        if text_model is not None:
            self.attach_text_tower(text_model, tokenizer)
        save_student(self, save_directory, self.image_processor, self.text_tower)
        if push_to_hub:
            hub = {k: kwargs[k] for k in HUB_ARGUMENTS if k in kwargs and k != "repo_id"}
            upload_folder(save_directory, kwargs.get("repo_id", Path(save_directory).name), **hub)

    def push_to_hub(self, repo_id: str, *, commit_message: Optional[str] = None, private: Optional[bool] = None,
                    token: Optional[str | bool] = None, revision: Optional[str] = None, create_pr: bool = False,
                    **kwargs: Any) -> Any:
        """Save to a temporary folder with ``save_pretrained`` and upload it as it is (transformers'
        own ``push_to_hub`` would replace the model card with a generic one)."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, **kwargs)
            return upload_folder(tmp, repo_id, commit_message=commit_message, private=private, token=token,
                                 revision=revision, create_pr=create_pr)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args: Any,
                        config: Any = None, head: LinearHead | str | os.PathLike | None = None,
                        map_location: str | torch.device = "cpu", dtype: Any = None,
                        cache_dir: Optional[str | os.PathLike] = None, revision: Optional[str] = None,
                        token: Optional[str | bool] = None, local_files_only: bool = False,
                        force_download: bool = False, subfolder: str = "", **kwargs: Any) -> "BcosStudent":
        """The student saved in a directory or under a hub id (fetched with huggingface_hub; offline
        with ``HF_HUB_OFFLINE=1``). Strict: every tensor present with its shape, errors name the
        file, the config key or the tensor. ``head``: a linear-probe head to attach (checked
        against these weights). ``config`` (what ``AutoModel`` passes) is read from the directory
        again, strictly. Directories saved before the Hugging Face layout (``config.json`` with an
        ``"aloe_student"`` key) load here and with ``load_student``, but not with ``AutoModel``
        (no ``model_type``): convert one with ``load_student(old).save_pretrained(new)``.
        """
        if model_args:
            raise TypeError(f"BcosStudent.from_pretrained() takes no positional model arguments, got {model_args}")
        unknown = sorted(set(kwargs) - IGNORED_KWARGS)
        if unknown:
            raise TypeError(f"BcosStudent.from_pretrained() got unexpected arguments {unknown}")
        directory = resolve_student_dir(pretrained_model_name_or_path, cache_dir=cache_dir, revision=revision,
                                        token=token, local_files_only=local_files_only,
                                        force_download=force_download, subfolder=subfolder)
        cfg_path, weights_path = student_file_paths(directory)
        student = cls(StudentConfig.from_json(cfg_path))
        state = read_student_weights(weights_path, map_location)
        check_state_dict(student.state_dict(), state, str(weights_path))
        student.load_state_dict(state, strict=True)
        student.image_processor = read_image_processor(directory, student.config)
        student.text_tower = load_text_tower(directory)
        if head is not None:
            student.attach_head(head)  # before a dtype change: the check hashes the weights as saved
        student.config.name_or_path = str(pretrained_model_name_or_path)
        student.name_or_path = student.config.name_or_path
        student = student.to(map_location)
        if dtype is not None and dtype != "auto":
            student = student.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        return student.eval()


def load_student(directory: str | Path, map_location: str | torch.device = "cpu") -> BcosStudent:
    """The student saved in ``directory`` (``save_pretrained``), = ``BcosStudent.from_pretrained``;
    errors name the missing, truncated or unreadable file, the config key that holds a bad value
    and the tensor that does not fit."""
    return BcosStudent.from_pretrained(directory, map_location=map_location)
