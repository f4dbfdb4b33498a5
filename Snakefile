# aloe: Align Once to Explain. The study as one DAG:
# url lists -> shards -> teachers/students -> features -> metrics -> tables.
# `config.yaml` holds every setting; `preset` picks the study block (demo by default, paper with
# `--profile slurm`). Each rule calls one plain aloe function through workflow/scripts/stage.py.
from pathlib import Path

from snakemake.utils import min_version

from aloe.config_schema import validate_config

min_version("9.0")

from aloe.workflow_lock import hold_workflow_lock

# One running instance per folder: Snakemake 9.27.1 lets a finishing instance delete a running
# one's locks (see aloe/workflow_lock.py), so the workflow holds a lock of its own.
hold_workflow_lock(workflow)


configfile: "config.yaml"


validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/common_eval.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/tables.smk"


rule all:
    default_target: True
    input:
        expand("results/tables/{table}.{ext}", table=TABLES, ext=("csv", "tex")),
        "results/plots/fig9_data_efficiency.png",
        "results/plots/fig1_gridpg_vs_accuracy.png",
        expand("results/tables/{table}.html", table=TABLES),
        "results/plots/explanations.png",
        "results/tables/data_quality.csv",
        "results/tables/data_quality.html",
