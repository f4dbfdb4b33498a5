"""The architecture record of a B-cos student: a ``transformers`` config (``model_type``
"aloe_bcos_student"), saved as ``config.json`` beside its weights.

Two layouts of ``config.json`` are read: the Hugging Face one written now (the fields at the top
level with ``model_type``, so that ``AutoConfig`` reads it once ``aloe.models`` is imported) and
the earlier aloe one (the fields under an ``"aloe_student"`` key), which ``from_json`` still
reads. Optional metadata (the teacher's hub id, the alignment settings, measured results) travels
in the same file; the model card is written from it (``aloe.models.model_card``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import transformers
from transformers import PreTrainedConfig

from aloe.registry import BCOS_FORMS, STUDENT_FAMILIES, STUDENT_STEMS

FAMILIES, STEMS = STUDENT_FAMILIES, STUDENT_STEMS  # the names this module exported before
MODEL_TYPE = "aloe_bcos_student"
LEGACY_KEY = "aloe_student"
ARCHITECTURE = "BcosStudent"
_KINDS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}
# the architecture fields and their kinds, in the order they are checked
FIELD_KINDS = {"family": "str", "hidden_size": "int", "num_layers": "int", "num_heads": "int",
               "intermediate_size": "int", "image_size": "int", "patch_size": "int", "act": "str", "eps": "float",
               "use_cls": "bool", "num_registers": "int", "position": "str", "pooling": "str", "layerscale": "bool",
               "gated_mlp": "bool", "rope_theta": "float", "b": "float", "stem": "str", "bcos_form": "str"}
METADATA_FIELDS = ("teacher", "alignment", "results")
# keys a transformers-written config.json may hold besides the student's own
_HF_KEYS = frozenset({f.name for f in dataclasses.fields(PreTrainedConfig)} | {"model_type", "_name_or_path"})


class StudentConfig(PreTrainedConfig):
    model_type = MODEL_TYPE
    attribute_map = {"num_hidden_layers": "num_layers", "num_attention_heads": "num_heads", "hidden_act": "act",
                     "layer_norm_eps": "eps"}

    family: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    image_size: int
    patch_size: int
    act: str
    eps: float
    use_cls: bool  # a [CLS] token at position 0 (ViT, DINOv3)
    num_registers: int  # register tokens after [CLS] (DINOv3)
    position: str  # "learned" (ViT: CLS + patches; SigLIP: patches) or "rope" (DINOv3, patches only)
    pooling: str  # "cls" (final [CLS]) or "map" (SigLIP attention pooling)
    layerscale: bool = False
    gated_mlp: bool = False
    rope_theta: float = 100.0
    b: float = 2.0
    stem: str = "linear"
    bcos_form: str = "cosine"  # the B-cos layers' dynamic factor (aloe.bcos.linear)
    teacher: Optional[str] = None  # the teacher's hub id (or path), for the model card
    alignment: Optional[dict] = None  # alignment settings, JSON values
    results: Optional[dict] = None  # measured results, JSON values

    def __post_init__(self, **kwargs: Any) -> None:
        self._check()
        super().__post_init__(**kwargs)

    def _check(self) -> None:
        for name, kind in FIELD_KINDS.items():
            value = getattr(self, name)
            kinds = _KINDS[kind]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"student config key {name!r} must be {_WORDS[kind]}, got {value!r}")
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "image_size", "patch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"student config key {key!r} must be >= 1, got {getattr(self, key)}")
        if self.num_registers < 0 or not self.eps > 0:
            raise ValueError(f"student config keys 'num_registers' >= 0 and 'eps' > 0, got {self.num_registers}, "
                             f"{self.eps}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"student config key 'hidden_size' {self.hidden_size} is not a multiple of "
                             f"'num_heads' {self.num_heads}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.bcos_form not in BCOS_FORMS:
            raise ValueError(f"bcos_form must be one of {BCOS_FORMS}, got {self.bcos_form!r}")
        if self.b < 1:
            raise ValueError(f"b must be >= 1, got {self.b}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.pooling == "cls" and not self.use_cls:
            raise ValueError("pooling 'cls' needs use_cls=True")
        self.check_metadata(self.teacher, self.alignment, self.results)

    @staticmethod
    def check_metadata(teacher: Any, alignment: Any, results: Any) -> None:
        if teacher is not None and not isinstance(teacher, str):
            raise ValueError(f"student config key 'teacher' must be a string (a hub id), got {teacher!r}")
        for key, value in (("alignment", alignment), ("results", results)):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"student config key {key!r} must be a mapping, got {type(value).__name__}")
            try:
                json.dumps(value, sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise ValueError(f"student config key {key!r} must hold JSON values only: {err}") from err

    def __eq__(self, other: object) -> bool:
        """The same student architecture and metadata (transformers' runtime attributes, such as
        the path it was loaded from, do not count)."""
        return isinstance(other, StudentConfig) and self.fields() == other.fields()

    __hash__ = None

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.use_cls) + self.num_registers

    def architecture(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELD_KINDS}

    def fields(self) -> dict[str, Any]:
        """Architecture and the metadata that is set: what ``config.json`` records."""
        meta = {k: getattr(self, k) for k in METADATA_FIELDS if getattr(self, k) is not None}
        return {**self.architecture(), **meta}

    def to_json(self, path: str | Path) -> None:
        """``config.json`` in the Hugging Face layout; sorted keys, so the same config gives the same bytes."""
        from aloe.io import write_json

        write_json(path, {"model_type": MODEL_TYPE, "architectures": [ARCHITECTURE],
                          "transformers_version": transformers.__version__, **self.fields()})

    @classmethod
    def from_json(cls, path: str | Path) -> "StudentConfig":
        """Read either layout; errors name the file and the key."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path} is not an aloe student config (not a JSON object)")
        if LEGACY_KEY in data:
            values, ignored = data[LEGACY_KEY], set()
        elif data.get("model_type") == MODEL_TYPE:
            values, ignored = data, _HF_KEYS
        else:
            raise ValueError(f"{path} is not an aloe student config (no {LEGACY_KEY!r} key and model_type "
                             f"{data.get('model_type')!r}, not {MODEL_TYPE!r})")
        known = set(FIELD_KINDS) | set(METADATA_FIELDS)
        unknown = set(values) - known - ignored
        if unknown:
            raise ValueError(f"{path}: unknown student config keys {sorted(unknown)}")
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        except TypeError as err:  # a missing key
            raise ValueError(f"{path}: {err}") from err
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
