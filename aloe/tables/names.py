"""Display names, orderings and metric units shared by the tables and plots.

Record names (backbone, dataset, metric, attribution method) stay machine names everywhere; this
module is the one place that maps them to the labels printed in the paper's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from aloe.registry import ATTRIBUTION_METHODS, BACKBONES, DATASETS

# Orders and labels come from the registry (aloe.registry): paper order first, then the demo's.
DATASET_ORDER = tuple(DATASETS)
# The paper's "Avg." is the mean over exactly these ten datasets (IN1k included).
PAPER_AVG_DATASETS = frozenset(name for name, entry in DATASETS.items() if entry.paper_avg)
DATASET_LABELS = {name: entry.label for name, entry in DATASETS.items()}

BACKBONE_ORDER = tuple(BACKBONES)
BACKBONE_LABELS = {name: entry.label for name, entry in BACKBONES.items()}

TEACHER, BCOSIFICATION, ALOE = "teacher", "bcosification", "aloe"
VARIANTS = (TEACHER, BCOSIFICATION, ALOE)
VARIANT_LABELS = {TEACHER: "Teacher", BCOSIFICATION: "B-cosif.", ALOE: "ALOE"}

# Attribution methods of GridPG records (params["method"]); B-cos W(x)x is the students' own.
METHOD_ORDER = ATTRIBUTION_METHODS
# cp_lrp fills the paper's "LRP" column: the authors ran "AttnLRP" on HF teachers as CP-LRP.
METHOD_LABELS = {"cp_lrp": "LRP", "attnlrp": "AttnLRP", "ig": "IG", "legrad": "LeG", "chefercam": "Chf", "lime": "LIME",
                 "bcos": "B-cos"}

# Ablation settings in the paper's column order (Table 4, Table B8); others follow, sorted.
SETTING_ORDER = {
    "depths": ("pool", "L", "2L3-L", "L3-2L3-L", "all"),
    "loss": ("mse", "cosine", "siglip", "infonce"),
}
SETTING_LABELS = {
    "depths": {"pool": "Pool", "L": "+L", "2L3-L": "+{2/3, L}", "L3-2L3-L": "+{1/3, 2/3, L}", "all": "+All"},
    "loss": {"mse": "MSE", "cosine": "Cosine", "siglip": "SigLIP", "infonce": "InfoNCE"},
}


@dataclass(frozen=True)
class Metric:
    """How a record metric is shown: shown value = record value * scale, with ``decimals``."""

    label: str
    unit: str
    decimals: int = 2
    scale: float = 1.0
    higher_is_better: bool = True


def _normals(label: str) -> Metric:
    # Records hold fractions of valid pixels (Probe3D's convention), as the paper prints (Table B5).
    return Metric(label, "fraction", decimals=2)


METRICS = {
    "lp_top1": Metric("LP top-1", "%"),
    "knn_top1": Metric("k-NN top-1", "%"),
    "zeroshot_top1": Metric("Zero-shot top-1", "%"),
    "depth_rel_delta1": Metric("Rel. delta1", "fraction", decimals=4),
    "depth_rel_rmse": Metric("Rel. RMSE", "m", decimals=4, higher_is_better=False),
    "depth_abs_delta1": Metric("Abs. delta1", "fraction", decimals=4),
    "depth_abs_rmse": Metric("Abs. RMSE", "m", decimals=4, higher_is_better=False),
    "normals_frac_under_11.25": _normals("delta1 (11.25 deg)"),
    "normals_frac_under_22.5": _normals("delta2 (22.5 deg)"),
    "normals_frac_under_30": _normals("delta3 (30 deg)"),
    "normals_rmse_deg": Metric("RMSE (deg)", "deg", decimals=1, higher_is_better=False),
    "gridpg": Metric("GridPG", "%", decimals=2, scale=100.0),  # records hold a share in [0, 1]
}


def metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"metric {name!r} has no display entry in aloe.tables.names.METRICS") from None


def ordered(names: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """Known names in ``preferred`` order, then the rest sorted."""
    names, preferred = set(names), list(preferred)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def label(name: str, labels: dict[str, str]) -> str:
    return labels.get(name, name)
