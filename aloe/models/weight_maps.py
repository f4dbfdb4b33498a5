"""Explicit teacher -> student weight tables, one per family.

Each table lists, for every teacher tensor, whether it is transferred (optionally through a
named transform), deliberately dropped (biases and unused heads) or replaced (by freshly
initialised student modules). :func:`apply_weight_map` checks the table against both state
dicts completely before copying anything, in the manner of nanoGPT's ``from_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from aloe.bcos import fold_first_layer
from aloe.models.student_config import StudentConfig

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Transfer:
    student: str
    teacher: str
    transform: Optional[Transform] = None
    transform_name: str = "copy"


@dataclass
class WeightMap:
    transfers: list[Transfer] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # teacher key -> why
    replaced: dict[str, str] = field(default_factory=dict)  # teacher key -> what replaces it

    def copy(self, student: str, teacher: str) -> None:
        self.transfers.append(Transfer(student, teacher))

    def transform(self, student: str, teacher: str, fn: Transform, name: str) -> None:
        self.transfers.append(Transfer(student, teacher, fn, name))

    def drop(self, teacher: str, why: str) -> None:
        self.dropped[teacher] = why


def _patch_embedding(m: WeightMap, cfg: StudentConfig, weight: str, bias: Optional[str], mean, std) -> None:
    if cfg.stem == "linear":
        m.transform("patch_embed.weight", weight, lambda w: fold_first_layer(w, mean, std), "fold_first_layer")
    else:
        m.replaced[weight] = "fresh B-cos conv stem (patch_embed.*)"
    if bias is not None:
        (m.dropped if cfg.stem == "linear" else m.replaced)[bias] = "bias (B-cos is bias-free)"


def _block(m: WeightMap, i: int, t: str, names: dict[str, str], biased: list[str]) -> None:
    for s_name, t_name in names.items():
        m.copy(f"blocks.{i}.{s_name}", f"{t}.{t_name}")
    for t_name in biased:
        m.drop(f"{t}.{t_name}", "bias (B-cos is bias-free)")


def vit_weight_map(cfg: StudentConfig, teacher_keys: set[str], mean, std) -> WeightMap:
    m = WeightMap()
    m.copy("cls_token", "embeddings.cls_token")
    m.copy("pos_embed", "embeddings.position_embeddings")
    _patch_embedding(m, cfg, "embeddings.patch_embeddings.projection.weight",
                     "embeddings.patch_embeddings.projection.bias", mean, std)
    for i in range(cfg.num_layers):
        names = {"norm1.weight": "layernorm_before.weight", "norm2.weight": "layernorm_after.weight",
                 "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc2.weight": "mlp.fc2.weight"}
        names |= {f"attn.{p}.weight": f"attention.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
        biased = ["layernorm_before.bias", "layernorm_after.bias", "mlp.fc1.bias", "mlp.fc2.bias"]
        biased += [f"attention.{p}.bias" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        _block(m, i, f"layers.{i}", names, [b for b in biased if f"layers.{i}.{b}" in teacher_keys])
    m.copy("norm.weight", "layernorm.weight")
    m.drop("layernorm.bias", "bias (B-cos is bias-free)")
    for k in ("pooler.dense.weight", "pooler.dense.bias"):
        if k in teacher_keys:
            m.drop(k, "ViT pooler is unused: the global feature is the final [CLS]")
    if "embeddings.mask_token" in teacher_keys:
        m.drop("embeddings.mask_token", "masked-image-modelling token, unused at inference")
    return m


def dinov3_weight_map(cfg: StudentConfig, teacher_keys: set[str], mean, std) -> WeightMap:
    m = WeightMap()
    m.copy("cls_token", "embeddings.cls_token")
    if cfg.num_registers:
        m.copy("register_tokens", "embeddings.register_tokens")
    m.drop("embeddings.mask_token", "masked-image-modelling token, unused at inference")
    _patch_embedding(m, cfg, "embeddings.patch_embeddings.weight", "embeddings.patch_embeddings.bias", mean, std)
    mlp_names = ({p: p for p in ("gate_proj", "up_proj", "down_proj")} if cfg.gated_mlp
                 else {"fc1": "up_proj", "fc2": "down_proj"})
    for i in range(cfg.num_layers):
        names = {"norm1.weight": "norm1.weight", "norm2.weight": "norm2.weight",
                 "ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1"}
        names |= {f"attn.{p}.weight": f"attention.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
        names |= {f"mlp.{s}.weight": f"mlp.{t}.weight" for s, t in mlp_names.items()}
        projections = ("q_proj", "k_proj", "v_proj", "o_proj")
        biased = ["norm1.bias", "norm2.bias"] + [f"attention.{p}.bias" for p in projections]
        biased += [f"mlp.{t}.bias" for t in mlp_names.values()]
        _block(m, i, f"model.layer.{i}", names, [b for b in biased if f"model.layer.{i}.{b}" in teacher_keys])
    m.copy("norm.weight", "norm.weight")
    m.drop("norm.bias", "bias (B-cos is bias-free)")
    return m


def siglip_weight_map(cfg: StudentConfig, teacher_keys: set[str], mean, std) -> WeightMap:
    """Keys of the SigLIP *vision* model (``SiglipVisionModel`` / ``SiglipModel.vision_model``)."""
    m = WeightMap()
    m.transform("pos_embed", "embeddings.position_embedding.weight", lambda w: w[None], "add_batch_dim")
    _patch_embedding(m, cfg, "embeddings.patch_embedding.weight", "embeddings.patch_embedding.bias", mean, std)
    for i in range(cfg.num_layers):
        names = {"norm1.weight": "layer_norm1.weight", "norm2.weight": "layer_norm2.weight",
                 "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc2.weight": "mlp.fc2.weight",
                 "attn.o_proj.weight": "self_attn.out_proj.weight"}
        names |= {f"attn.{p}.weight": f"self_attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj")}
        biased = ["layer_norm1.bias", "layer_norm2.bias", "mlp.fc1.bias", "mlp.fc2.bias", "self_attn.out_proj.bias"]
        biased += [f"self_attn.{p}.bias" for p in ("q_proj", "k_proj", "v_proj")]
        _block(m, i, f"encoder.layers.{i}", names, biased)
    m.copy("norm.weight", "post_layernorm.weight")
    m.drop("post_layernorm.bias", "bias (B-cos is bias-free)")
    m.copy("head.probe", "head.probe")
    for j, p in enumerate(("q_proj", "k_proj", "v_proj")):
        m.transform(f"head.{p}.weight", "head.attention.in_proj_weight",
                    lambda w, j=j: w.chunk(3, dim=0)[j], f"split_in_proj[{j}]")
    m.drop("head.attention.in_proj_bias", "bias (B-cos is bias-free)")
    m.copy("head.o_proj.weight", "head.attention.out_proj.weight")
    m.copy("head.norm.weight", "head.layernorm.weight")
    m.copy("head.mlp.fc1.weight", "head.mlp.fc1.weight")
    m.copy("head.mlp.fc2.weight", "head.mlp.fc2.weight")
    for k in ("head.attention.out_proj.bias", "head.layernorm.bias", "head.mlp.fc1.bias", "head.mlp.fc2.bias"):
        m.drop(k, "bias (B-cos is bias-free)")
    return m


WEIGHT_MAPS = {"vit": vit_weight_map, "dinov3": dinov3_weight_map, "siglip": siglip_weight_map}


def apply_weight_map(m: WeightMap, teacher_state: dict[str, torch.Tensor],
                     student_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check the table against both state dicts, then return the complete student state dict.

    Student tensors without a transfer are allowed only if they belong to a replacement module
    (the conv stem); they keep the student's fresh initialisation.
    """
    used = {t.teacher for t in m.transfers}
    accounted = used | set(m.dropped) | set(m.replaced)
    unknown = sorted(accounted - set(teacher_state))
    if unknown:
        raise KeyError(f"weight map names teacher tensors that do not exist: {unknown}")
    unmapped = sorted(set(teacher_state) - accounted)
    if unmapped:
        raise KeyError(f"teacher tensors neither transferred, dropped nor replaced: {unmapped}")
    both = sorted(used & (set(m.dropped) | set(m.replaced)))
    if both:
        raise KeyError(f"teacher tensors both transferred and dropped/replaced: {both}")
    targets = [t.student for t in m.transfers]
    if len(targets) != len(set(targets)):
        raise KeyError("weight map writes a student tensor twice")
    out: dict[str, torch.Tensor] = {}
    for t in m.transfers:
        if t.student not in student_state:
            raise KeyError(f"weight map writes student tensor {t.student!r}, which the student does not have")
        value = teacher_state[t.teacher]
        value = t.transform(value) if t.transform is not None else value
        want = tuple(student_state[t.student].shape)
        if tuple(value.shape) != want:
            raise ValueError(f"{t.teacher} -> {t.student} ({t.transform_name}): shape {tuple(value.shape)}, "
                             f"student expects {want}")
        out[t.student] = value.detach().clone().to(student_state[t.student].dtype)
    fresh = sorted(set(student_state) - set(out))
    stray = [k for k in fresh if not (m.replaced and k.startswith("patch_embed."))]
    if stray:
        raise KeyError(f"student tensors with no teacher source and no replacement: {stray}")
    for k in fresh:
        out[k] = student_state[k]
    return out
