"""Paper tables (CSV + LaTeX) and plots built from the evaluation stage's result records."""

from aloe.tables.build import build_table, make_table
from aloe.tables.collect import MissingRecordError, ablation_variant, parse_variant
from aloe.tables.plots import plot_data_efficiency, plot_gridpg_vs_accuracy
from aloe.tables.specs import TABLES, TableSpec

__all__ = [
    "TABLES", "MissingRecordError", "TableSpec", "ablation_variant", "build_table", "make_table", "parse_variant",
    "plot_data_efficiency", "plot_gridpg_vs_accuracy",
]
