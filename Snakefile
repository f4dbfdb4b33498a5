# aloe: Align Once to Explain. The study as one DAG:
# url lists -> shards -> teachers/students -> features -> metrics -> tables.
# `config.yaml` holds every setting; `preset` picks the study (demo by default, paper with
# `--profile slurm`); demo and tiny state only what differs from paper (aloe/config.py).
# Each rule calls one plain aloe function through workflow/scripts/stage.py.
from pathlib import Path

from snakemake.utils import min_version

from aloe.config import validate_config

min_version("9.0")

from aloe.workflow_lock import hold_workflow_lock

# One running instance per folder: Snakemake 9.27.1 lets a finishing instance delete a running
# one's locks (see aloe/workflow_lock.py), so the workflow holds a lock of its own.
hold_workflow_lock(workflow)


configfile: "config.yaml"


# every preset resolved into its complete study (aloe/config.py), defaults filled, schema-checked
SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
config.update(validate_config(config, SCHEMA))


report: "workflow/report/workflow.rst"


# Jobs keep hard links of their outputs for a restart after a killed Snakemake (aloe/launch/kept.py);
# once the workflow ends it has recorded every finished job, so the links go. (No hooks in a dry run.)
onsuccess:
    from aloe.launch.kept import drop_all_kept

    drop_all_kept("results/jobs")


onerror:
    from aloe.launch.kept import drop_all_kept

    drop_all_kept("results/jobs")


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
        "results/plots/figB3_deletion.png",
        expand("results/tables/{table}.html", table=TABLES),
        "results/plots/explanations.png",
        "results/plots/fig1_pca.png",
        "results/plots/zero_shot_explanations.png",
        "results/tables/data_quality.csv",
        "results/tables/data_quality.html",
