"""Conversion of a frozen teacher into its B-cos student."""

from __future__ import annotations

import torch

from aloe.models.student import BcosStudent
from aloe.models.student_config import StudentConfig
from aloe.models.teacher import Teacher
from aloe.models.weight_maps import WEIGHT_MAPS, WeightMap, apply_weight_map


def student_config_for(teacher: Teacher, b: float = 2.0, stem: str = "linear",
                       bcos_form: str = "cosine") -> StudentConfig:
    vc = teacher.vision_config
    common = dict(family=teacher.family, hidden_size=vc.hidden_size, num_layers=vc.num_hidden_layers,
                  num_heads=vc.num_attention_heads, intermediate_size=vc.intermediate_size,
                  image_size=int(vc.image_size), patch_size=int(vc.patch_size), act=vc.hidden_act,
                  eps=vc.layer_norm_eps, b=b, stem=stem, bcos_form=bcos_form)
    if teacher.family == "vit":
        return StudentConfig(**common, use_cls=True, num_registers=0, position="learned", pooling="cls")
    if teacher.family == "dinov3":
        return StudentConfig(**common, use_cls=True, num_registers=vc.num_register_tokens, position="rope",
                             pooling="cls", layerscale=True, gated_mlp=vc.use_gated_mlp, rope_theta=vc.rope_theta)
    if not getattr(vc, "vision_use_head", True):
        raise ValueError("SigLIP teachers without the attention-pooling head are not supported")
    return StudentConfig(**common, use_cls=False, num_registers=0, position="learned", pooling="map")


def weight_map_for(teacher: Teacher, cfg: StudentConfig) -> WeightMap:
    keys = set(teacher.vision.state_dict())
    return WEIGHT_MAPS[teacher.family](cfg, keys, teacher.mean, teacher.std)


INIT_SEED = 0


def bcosify(teacher: Teacher, b: float = 2.0, stem: str = "linear", bcos_form: str = "cosine") -> BcosStudent:
    """A bias-free B-cos student mirroring ``teacher`` (width, depth, tokens), taking raw RGB in [0, 1].

    ``stem="linear"`` transfers the patch projection through the exact 6-channel fold;
    ``stem="conv"`` replaces it with a freshly initialised B-cos conv stem (seeded with
    ``INIT_SEED``, whatever the global RNG state: the same teacher gives the same student).
    ``bcos_form`` is the B-cos layers' dynamic factor (``aloe.bcos.linear.FORMS``); it is saved in
    the student's ``config.json``, so ``load_student`` rebuilds the same layers.
    """
    cfg = student_config_for(teacher, b=b, stem=stem, bcos_form=bcos_form)
    reference = next(teacher.vision.parameters())
    with torch.random.fork_rng(devices=[]):  # the fresh parts (a conv stem) start the same in every process
        torch.manual_seed(INIT_SEED)
        student = BcosStudent(cfg)
    student = student.to(device=reference.device, dtype=reference.dtype)
    state = apply_weight_map(weight_map_for(teacher, cfg), teacher.vision.state_dict(), student.state_dict())
    student.load_state_dict(state, strict=True)
    return student


def shared_linear_weights(teacher: Teacher, student: BcosStudent) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(teacher weight, student weight) pairs of the matrices copied one to one (for the
    weight-norm regulariser); transformed tensors such as the folded patch projection are left out."""
    t_state = dict(teacher.vision.named_parameters())
    s_state = dict(student.named_parameters())
    pairs = []
    for t in weight_map_for(teacher, student.config).transfers:
        if t.transform is None and s_state[t.student].ndim == 2:
            pairs.append((t_state[t.teacher], s_state[t.student]))
    return pairs
