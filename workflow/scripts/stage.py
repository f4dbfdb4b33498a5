# Thin bridge: every rule runs this script, which calls the aloe function the rule names.
#
# aloe comes from the repository this script belongs to, put first on sys.path here: Snakemake runs
# a copy of the script (in .snakemake/scripts) with the repository root as working directory but
# not on sys.path, and sets __file__ to this file. Otherwise aloe would be importable only where it
# is pip-installed into the interpreter that runs the rule, which a --use-conda environment
# (envs/aloe.yaml, the dependencies without aloe) is not.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aloe.pipeline import run_snakemake_job

run_snakemake_job(snakemake)  # noqa: F821 (injected by Snakemake)
