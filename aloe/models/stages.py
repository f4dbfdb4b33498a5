"""The model stages: rule ``X`` of ``workflow/rules/models.smk`` calls ``run_X`` here."""

from aloe.models.teacher_stage import prepare_teacher as run_teacher

__all__ = ["run_teacher"]
