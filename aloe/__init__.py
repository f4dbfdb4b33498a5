"""aloe: Align Once to Explain. Turn frozen ViT foundation models into inherently interpretable B-cos backbones.

Public API: ``from aloe import load_teacher, bcosify, explain``, and the Hugging Face-native
student: ``BcosStudent`` (``BcosStudent.from_pretrained``, ``student.explain``), ``load_student``,
``StudentConfig``, ``BcosImageProcessor`` and ``load_head`` (a linear-probe head for class
targets). They are imported lazily so that light stages (data preparation, the launcher,
Snakefile parsing) do not pay for importing torch and transformers.
"""

__version__ = "0.1.0"
_LAZY = ("BcosImageProcessor", "BcosStudent", "StudentConfig", "bcosify", "explain", "load_head", "load_student",
         "load_teacher")
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import aloe.models

        return getattr(aloe.models, name)
    raise AttributeError(f"module 'aloe' has no attribute {name!r}")
