"""The table and figure stages: rule ``X`` of ``workflow/rules/tables.smk`` calls ``run_X`` here."""

from aloe.tables import build_table as run_table
from aloe.tables import plot_data_efficiency as run_plot_data_efficiency
from aloe.tables import plot_gridpg_vs_accuracy as run_plot_gridpg_vs_accuracy
from aloe.tables.data_quality import build_data_quality as run_data_quality
from aloe.tables.deletion_plot import plot_deletion_curves as run_plot_deletion_curves
from aloe.tables.explanations import explanation_grid as run_explanation_grid
from aloe.tables.html import table_html as run_table_html
from aloe.tables.pca_plot import pca_figure as run_pca_view
from aloe.tables.zeroshot_plot import zero_shot_figure as run_zero_shot_explanations

__all__ = ["run_data_quality", "run_explanation_grid", "run_plot_data_efficiency", "run_plot_deletion_curves",
           "run_pca_view", "run_plot_gridpg_vs_accuracy", "run_table", "run_table_html", "run_zero_shot_explanations"]
