"""The student's place in transformers' Auto classes, registered when ``aloe.models`` is imported.

After ``import aloe.models`` (or ``from aloe import BcosStudent``), ``AutoConfig``, ``AutoModel``
and ``AutoImageProcessor`` ``.from_pretrained(student_dir)`` give a ``StudentConfig``, a
``BcosStudent`` and a ``BcosImageProcessor``; no remote code is involved.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from aloe.models.image_processor import BcosImageProcessor
from aloe.models.student import BcosStudent
from aloe.models.student_config import MODEL_TYPE, StudentConfig


def register_auto_classes() -> None:
    """Idempotent."""
    AutoConfig.register(MODEL_TYPE, StudentConfig, exist_ok=True)
    AutoModel.register(StudentConfig, BcosStudent, exist_ok=True)
    AutoImageProcessor.register(StudentConfig, image_processor_classes={"torchvision": BcosImageProcessor,
                                                                        "pil": BcosImageProcessor}, exist_ok=True)
