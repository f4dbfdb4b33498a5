"""Teachers, B-cos students, the conversion between them, and explanations."""

from aloe.models.bcosify import bcosify, shared_linear_weights, student_config_for
from aloe.models.explain import Explanation, explain
from aloe.models.outputs import EncoderOutput
from aloe.models.student import BcosStudent, load_student
from aloe.models.student_config import StudentConfig
from aloe.models.student_files import save_student
from aloe.models.teacher import Teacher, load_teacher

__all__ = [
    "BcosStudent", "EncoderOutput", "Explanation", "StudentConfig", "Teacher", "bcosify", "explain",
    "load_student", "load_teacher", "save_student", "shared_linear_weights", "student_config_for",
]
