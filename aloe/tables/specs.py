"""The registry of paper tables: one TableSpec per name, read by the layouts in ``layouts``.

A spec says which metric(s) a table shows, which layout arranges them, and which cells may be
absent; the rows (backbones) and columns (datasets) come from the records or from the
``backbones`` / ``datasets`` arguments of ``build_table``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aloe.tables.names import BCOSIFICATION

LAYOUTS = ("grid", "ablation", "gridpg")


@dataclass(frozen=True)
class TableSpec:
    layout: str  # grid: variants x (datasets | metrics); ablation: backbones x settings; gridpg: Table B6
    caption: str
    metrics: tuple[str, ...]
    columns: str = "dataset"  # grid only: "dataset" (one metric) or "metric" (one dataset)
    average: bool = False  # grid by dataset: add "Avg." = mean over all datasets
    first_dataset_only: bool = False  # grid by dataset: show the first dataset (and Avg.) only
    optional_variants: tuple[str, ...] = ()  # grid: a backbone without any record of these drops the row
    axis: str = ""  # ablation only: "depths" | "loss"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"table layout {self.layout!r} not in {LAYOUTS}")
        if self.layout == "grid" and self.columns == "dataset" and len(self.metrics) != 1:
            raise ValueError("a grid table with dataset columns shows exactly one metric")


_DEPTH = ("depth_rel_delta1", "depth_rel_rmse", "depth_abs_delta1", "depth_abs_rmse")
_NORMALS = ("normals_frac_under_11.25", "normals_frac_under_22.5", "normals_frac_under_30", "normals_rmse_deg")

TABLES: dict[str, TableSpec] = {
    "table2": TableSpec("grid", "Linear-probe top-1 (%) on frozen features, base models.", ("lp_top1",),
                        average=True),
    "table3a": TableSpec("grid", "k-NN (k=20) top-1 (%): first dataset and average over all.", ("knn_top1",),
                         average=True, first_dataset_only=True),
    "table3b": TableSpec("grid", "Zero-shot top-1 (%).", ("zeroshot_top1",)),
    "table4": TableSpec("ablation", "Feature-depth ablation: ALOE linear-probe top-1 (%), averaged over datasets.",
                        ("lp_top1",), axis="depths"),
    "tableB1": TableSpec("grid", "Linear-probe top-1 (%), all models.", ("lp_top1",), average=True,
                         optional_variants=(BCOSIFICATION,)),
    "tableB2": TableSpec("grid", "k-NN (k=20) top-1 (%), all models.", ("knn_top1",), average=True,
                         optional_variants=(BCOSIFICATION,)),
    "tableB3": TableSpec("grid", "Zero-shot top-1 (%), all SigLIP models.", ("zeroshot_top1",),
                         optional_variants=(BCOSIFICATION,)),
    "tableB4": TableSpec("grid", "Dense linear probe, monocular depth.", _DEPTH, columns="metric"),
    "tableB5": TableSpec("grid", "Dense linear probe, surface normals.", _NORMALS, columns="metric"),
    "tableB6": TableSpec("gridpg", "GridPG (%) of post-hoc teacher attributions vs ALOE's B-cos W(x)x, with "
                         "linear-probe and k-NN top-1 (%).", ("lp_top1", "knn_top1", "gridpg")),
    "tableB8": TableSpec("ablation", "Alignment-loss ablation: ALOE linear-probe top-1 (%).", ("lp_top1",),
                         axis="loss"),
}


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; available: {sorted(TABLES)}") from None
