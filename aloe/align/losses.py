"""Alignment losses (paper Sec. 4.2, eqs. 2-5).

Depths are 1-based block outputs (``hidden_states[l]``), resolved from the config by
``aloe.depths.resolve_depths``.

Token-level features are all tokens the model carries at that depth (paper Table 1):
CLS + registers + patches for ViT / DINOv3, patches only for SigLIP (which has no prefix).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_KINDS = ("cosine", "mse", "siglip", "infonce")
SIGLIP_SCALE = 10.0  # fixed logit scale and bias, as B-cosification used for CLIP
SIGLIP_BIAS = -10.0


def _as_float(x: Tensor) -> Tensor:
    return x.float()


def cosine_loss(s: Tensor, t: Tensor) -> Tensor:
    """mean(1 - cos(s, t)) over all leading dims (per token, then per image: eqs. 3-4)."""
    return (1.0 - F.cosine_similarity(_as_float(s), _as_float(t), dim=-1, eps=1e-8)).mean()


def mse_loss(s: Tensor, t: Tensor) -> Tensor:
    """Mean squared error over all elements."""
    return F.mse_loss(_as_float(s), _as_float(t))


def _batch_major(s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(N, D) -> (1, N, D); (N, T, D) -> (T, N, D): contrast images at the same token position."""
    if s.dim() == 2:
        return s[None], t[None]
    return s.transpose(0, 1), t.transpose(0, 1)


def siglip_loss(s: Tensor, t: Tensor, scale: float = SIGLIP_SCALE, bias: float = SIGLIP_BIAS) -> Tensor:
    """SigLIP sigmoid loss with batch negatives: -sum_ij logsigmoid(z_ij * (scale cos_ij + bias)) / N.

    z_ij = +1 on the diagonal (same image), -1 elsewhere. Token features contrast the images of
    the batch at the same token position and average over positions.
    """
    s, t = _batch_major(F.normalize(_as_float(s), dim=-1), F.normalize(_as_float(t), dim=-1))
    n = s.shape[1]
    logits = scale * s @ t.transpose(1, 2) + bias
    labels = 2.0 * torch.eye(n, device=s.device) - 1.0
    return -(F.logsigmoid(labels * logits).sum(dim=(1, 2)) / n).mean()


def infonce_loss(s: Tensor, t: Tensor, temperature: float = 0.07) -> Tensor:
    """Symmetric InfoNCE (CLIP style) on cosine logits / temperature, batch negatives."""
    s, t = _batch_major(F.normalize(_as_float(s), dim=-1), F.normalize(_as_float(t), dim=-1))
    logits = s @ t.transpose(1, 2) / temperature
    target = torch.arange(s.shape[1], device=s.device).expand(s.shape[0], -1)
    ce_st = F.cross_entropy(logits.transpose(1, 2), target)  # class dim must be dim 1
    ce_ts = F.cross_entropy(logits, target)
    return 0.5 * (ce_st + ce_ts)


def feature_loss_fn(kind: str, temperature: float = 0.07) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss family named by config key ``loss`` as a function (student, teacher) -> scalar."""
    if kind == "cosine":
        return cosine_loss
    if kind == "mse":
        return mse_loss
    if kind == "siglip":
        return siglip_loss
    if kind == "infonce":
        return lambda s, t: infonce_loss(s, t, temperature)
    raise ValueError(f"config key 'loss': unknown loss {kind!r}; choose one of {LOSS_KINDS}")


def global_term(student_global: Tensor, teacher_global: Tensor, loss=cosine_loss) -> Tensor:
    """L_global on the family's global features (N, D) (eq. 3 for the cosine loss)."""
    _check_shapes("global feature", student_global, teacher_global)
    return loss(student_global, teacher_global)


def layer_term(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    depths: Iterable[int],
    loss=cosine_loss,
) -> Tensor:
    """L_layers: sum over depths of the per-token loss over all tokens (eq. 4).

    ``*_hidden`` are HF ``hidden_states`` tuples (L+1 tensors of shape (N, T, D)).
    """
    total = None
    for d in depths:
        if not 1 <= d < len(teacher_hidden) or len(student_hidden) != len(teacher_hidden):
            raise ValueError(
                f"depth {d} is outside the model: the teacher has {len(teacher_hidden) - 1} blocks, "
                f"the student {len(student_hidden) - 1}"
            )
        _check_shapes(f"hidden_states[{d}]", student_hidden[d], teacher_hidden[d])
        term = loss(student_hidden[d], teacher_hidden[d])
        total = term if total is None else total + term
    if total is None:
        raise ValueError("layer_term needs at least one depth")
    return total


def weight_norm_penalty(pairs: Sequence[tuple[Tensor, Tensor]], alpha: float) -> Tensor:
    """L_reg = alpha * sum_l (||W_T,l||_F - ||W_S,l||_F)^2 over (teacher, student) weight pairs (eq. 5).

    Only the Frobenius norms are compared, so the pair's shapes may differ (e.g. a 6-channel
    student stem vs the teacher's 3-channel patch embedding). Teacher norms carry no gradient.
    """
    if not pairs:
        raise ValueError("weight_norm_penalty: no (teacher, student) weight pairs given while alpha > 0")
    total = pairs[0][1].new_zeros((), dtype=torch.float32)
    for w_t, w_s in pairs:
        diff = torch.linalg.vector_norm(w_t.detach().float()) - torch.linalg.vector_norm(w_s.float())
        total = total + diff * diff
    return alpha * total


def _check_shapes(what: str, s: Tensor, t: Tensor) -> None:
    if s.shape != t.shape:
        raise ValueError(f"{what}: student shape {tuple(s.shape)} != teacher shape {tuple(t.shape)}")
