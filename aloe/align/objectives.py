"""Training objectives, selected by name (config key ``objective``).

Each objective is an ``nn.Module`` (it may own trainable parameters, e.g. a linear head) whose
forward takes the student, the (already computed, gradient-free) teacher output, the pixels and
the labels, and returns ``(loss, terms)`` where ``terms`` maps each loss term's name to a
detached scalar for logging. The training loop never branches on the objective: it asks
``needs_teacher`` / ``needs_labels`` and calls it.

- ``aloe``: the paper's alignment (global + multi-depth token + weight-norm terms).
- ``supervised``: B-cosification baseline for supervised ViT / DINOv3 teachers: cross-entropy
  through a linear head on the student's global feature.
- ``global_distill``: B-cosification baseline for CLIP-like teachers (SigLIP2): align only the
  final global embedding.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aloe.align.losses import feature_loss_fn, global_term, layer_term, weight_norm_penalty
from aloe.depths import resolve_depths

WeightPairsFn = Callable[[nn.Module, nn.Module], Sequence[tuple[Tensor, Tensor]]]


class AlignObjective(nn.Module):
    """L = lambda_g L_global + lambda_l L_layers + L_reg (paper eq. 2)."""

    needs_teacher = True
    needs_labels = False

    def __init__(
        self,
        num_layers: int,
        loss: str = "cosine",
        lambda_global: float = 1.0,
        lambda_layers: float = 1.0,
        depths: Sequence[int | str] | str | None = None,
        alpha: float = 0.0,
        temperature: float = 0.07,
        weight_pairs: WeightPairsFn | None = None,
    ):
        super().__init__()
        self.loss_fn = feature_loss_fn(loss, temperature)
        self.depths = resolve_depths(depths, num_layers)  # the symbols against the model's real block count
        self.lambda_global, self.lambda_layers, self.alpha = lambda_global, lambda_layers, alpha
        self.weight_pairs = weight_pairs
        if alpha > 0 and weight_pairs is None:
            raise ValueError("config key 'alpha' > 0 needs a teacher/student weight mapping (weight_pairs)")

    @property
    def output_hidden_states(self) -> bool:
        return self.lambda_layers != 0

    @property
    def uses_all_parameters(self) -> bool:
        """Without the global term the final norm / pooling head get no gradient (DDP must know)."""
        return self.lambda_global != 0

    def forward(self, student, teacher_out, pixels: Tensor, labels: Tensor | None, teacher=None):
        out = student(pixels, output_hidden_states=self.output_hidden_states)
        terms = {}
        loss = out.pooler_output.new_zeros((), dtype=torch.float32)
        if self.lambda_global != 0:
            g = global_term(out.pooler_output, teacher_out.pooler_output, self.loss_fn)
            loss, terms["global"] = loss + self.lambda_global * g, g.detach()
        if self.lambda_layers != 0:
            lt = layer_term(out.hidden_states, teacher_out.hidden_states, self.depths, self.loss_fn)
            loss, terms["layers"] = loss + self.lambda_layers * lt, lt.detach()
        if self.alpha > 0:
            r = weight_norm_penalty(self.weight_pairs(teacher, _unwrap(student)), self.alpha)
            loss, terms["reg"] = loss + r, r.detach()
        return loss, terms


class GlobalDistillObjective(AlignObjective):
    """B-cosification for CLIP-like teachers: only the final image embedding is aligned."""

    def __init__(self, num_layers: int, loss: str = "cosine", temperature: float = 0.07, **_ignored):
        super().__init__(num_layers, loss=loss, lambda_global=1.0, lambda_layers=0.0, temperature=temperature)


class SupervisedObjective(nn.Module):
    """B-cosification for supervised ViT / DINOv3: cross-entropy via a linear head on the global feature."""

    needs_teacher = False
    needs_labels = True
    uses_all_parameters = True

    def __init__(self, hidden_size: int, num_classes: int):
        super().__init__()
        if num_classes is None or num_classes < 2:
            raise ValueError(f"config key 'num_classes' must be >= 2 for the supervised objective, got {num_classes!r}")
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, student, teacher_out, pixels: Tensor, labels: Tensor | None, teacher=None):
        if labels is None:
            raise ValueError("the supervised objective needs labels: the shards carry no 'cls' entries")
        logits = self.head(student(pixels).pooler_output.float())
        ce = F.cross_entropy(logits, labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        return ce, {"ce": ce.detach(), "acc": acc.detach()}


OBJECTIVES = ("aloe", "supervised", "global_distill")


def build_objective(name: str, student, **kw) -> nn.Module:
    """Build the objective named by config key ``objective`` for ``student``."""
    if name == "aloe":
        keys = ("loss", "lambda_global", "lambda_layers", "depths", "alpha", "temperature", "weight_pairs")
        return AlignObjective(student.num_layers, **{k: kw[k] for k in keys if k in kw})
    if name == "global_distill":
        return GlobalDistillObjective(student.num_layers, **{k: kw[k] for k in ("loss", "temperature") if k in kw})
    if name == "supervised":
        return SupervisedObjective(student.hidden_size, kw.get("num_classes"))
    raise ValueError(f"config key 'objective': unknown objective {name!r}; choose one of {OBJECTIVES}")


def _unwrap(module):
    return getattr(module, "module", module)
