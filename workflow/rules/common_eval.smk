# Helpers of the evaluation, table and report rules (lint: functions live in common modules).
from types import SimpleNamespace

from aloe.depths import dense_blocks as resolve_dense_blocks


# ---- used by eval.smk ----
def dense_blocks(teacher):
    """0-based blocks whose patch tokens feed the dense probes (aloe.depths.dense_blocks)."""
    return resolve_dense_blocks(EVAL["dense"]["blocks"], TEACHERS[teacher]["depth"])


def zero_shot_templates(name):
    from aloe.data.zero_shot import load_templates

    return load_templates(name)


def explained_inputs(w, dataset):
    return [
        backbone_input(w),
        head_file(w.teacher, w.variant, dataset),
        eval_dataset_input(dataset),
    ]


def explained_kwargs(w, dataset):
    return dict(
        backbone_path=backbone(w.teacher, w.variant)[0],
        backbone_kind=backbone(w.teacher, w.variant)[1],
        head_path=head_file(w.teacher, w.variant, dataset),
        dataset_dir=eval_dataset_dir(dataset),
        split="test",
        method=w.method,
        backbone=w.teacher,
        variant=record_variant(w.variant),
        dataset=dataset,
    )


def gridpg_gate(w):
    """The other compared models of GridPG (aloe.study.table_plans.gridpg_gate): their backbones
    and heads also gate the grid images, so every record of a backbone scores the same grids.
    """
    dataset = EVAL["gridpg"]["dataset"]
    return [
        dict(
            variant=v,
            backbone_path=backbone(w.teacher, v)[0],
            backbone_kind=backbone(w.teacher, v)[1],
            head_path=head_file(w.teacher, v, dataset),
        )
        for v in table_plans.gridpg_gate(w.variant)
    ]


def gridpg_inputs(w):
    """The explained model's inputs, and the backbone and head of each gate (gridpg_gate)."""
    dataset = EVAL["gridpg"]["dataset"]
    files = explained_inputs(w, dataset)
    for v in table_plans.gridpg_gate(w.variant):
        gate = SimpleNamespace(teacher=w.teacher, variant=v)
        files += [backbone_input(gate), head_file(w.teacher, v, dataset)]
    return files


# ---- used by tables.smk ----
CLASSIFICATION = EVAL["classification"]


FIRST = CLASSIFICATION[:1]


TABLES = list(TABLE_NAMES)


def table_plan(table):
    """(record files, build_table keyword arguments) of one table (aloe.study.table_plans)."""
    return table_plans.table_plan(STUDY, table)


def fig9_records():
    return table_plans.fig9_records(STUDY)


def fig1_records():
    return table_plans.fig1_records(STUDY)


def figB3_records():
    return table_plans.figB3_records(STUDY)


# ---- used by tables.smk (data quality) ----
def data_quality_records():
    return table_plans.data_quality_records(STUDY)


# ---- used by tables.smk (report) ----
REPORT = "../report"


# ---- used by eval.smk (explanation_panels) and tables.smk (explanation_grid) ----
# the panels of the report's explanation grid: their record (JSON) and their images and maps
PANELS_RECORD = "results/explanations/panels.json"
PANELS_TENSORS = "results/explanations/panels.safetensors"
# post-hoc methods shown on the teachers: the GridPG methods (bcos is the student's own column);
# CheferCAM needs a [CLS] token, so SigLIP rows show it as n/a (aloe.study.table_plans).
EXPLAIN_METHODS = table_plans.explain_methods(STUDY)


def explanation_backbones(dataset):
    return table_plans.explanation_backbones(STUDY, dataset)


def explanation_inputs(dataset):
    return table_plans.explanation_inputs(STUDY, dataset)
