"""The study's plan: what the workflow's rules run, derived from one resolved config preset.

Plain functions of the study block (``aloe.config``: a preset resolved and schema-checked, put
through ``canonical``) and of wildcard values as plain strings; the rules in
``workflow/rules/*.smk`` call them and keep only what is Snakemake's (input functions of
``wildcards``, launch blocks, job resources). Standard library only: the Snakefile imports it.

- ``layout``: where the study's files are, and the names of backbones and variants;
- ``alignment_plan``: the alignment runs (main LR sweep, ablations), their keyword arguments and
  the B-cosification baselines, with the protocol decisions they make named there;
- ``eval_plan``: the settings the k-NN and linear-probe protocols read;
- ``table_plans``: the records each table, plot and the data-quality table read.
"""

from aloe.study.layout import canonical

__all__ = ["canonical"]
