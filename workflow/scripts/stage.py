# Thin bridge: every rule runs this script, which calls the aloe function the rule names.
from aloe.pipeline import run_snakemake_job

run_snakemake_job(snakemake)  # noqa: F821 (injected by Snakemake)
