"""aloe: Align Once to Explain. Turn frozen ViT foundation models into inherently interpretable B-cos backbones.

Public API: ``from aloe import load_teacher, bcosify, explain``. They are imported lazily so that
light stages (data preparation, the launcher, Snakefile parsing) do not pay for importing torch
and transformers.
"""

__version__ = "0.1.0"
__all__ = ["bcosify", "explain", "load_teacher", "__version__"]


def __getattr__(name: str):
    if name in ("bcosify", "explain", "load_teacher"):
        import aloe.models

        return getattr(aloe.models, name)
    raise AttributeError(f"module 'aloe' has no attribute {name!r}")
