"""Teachers, B-cos students, the conversion between them, and explanations.

Importing this package registers the student with transformers' Auto classes (``auto_classes``).
"""

from aloe.models.auto_classes import register_auto_classes
from aloe.models.bcosify import bcosify, shared_linear_weights, student_config_for
from aloe.models.explain import Explanation, explain
from aloe.models.heads import LinearHead, load_head
from aloe.models.image_processor import BcosImageProcessor
from aloe.models.outputs import EncoderOutput
from aloe.models.student import BcosStudent, load_student
from aloe.models.student_config import StudentConfig
from aloe.models.student_files import save_student
from aloe.models.teacher import Teacher, load_teacher

register_auto_classes()

__all__ = [
    "BcosImageProcessor", "BcosStudent", "EncoderOutput", "Explanation", "LinearHead", "StudentConfig", "Teacher",
    "bcosify", "explain", "load_head", "load_student", "load_teacher", "save_student", "shared_linear_weights",
    "student_config_for",
]
