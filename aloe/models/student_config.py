"""The architecture record of a B-cos student; saved as ``config.json`` beside its weights."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

FAMILIES = ("vit", "dinov3", "siglip")
_KINDS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}
STEMS = ("linear", "conv")
BCOS_FORMS = ("cosine", "bcosification_code")  # aloe.bcos.linear.FORMS (this module imports no torch)


@dataclass(frozen=True)
class StudentConfig:
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

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kinds = _KINDS[f.type]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"student config key {f.name!r} must be {_WORDS[f.type]}, got {value!r}")
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

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.use_cls) + self.num_registers

    def to_json(self, path: str | Path) -> None:
        from aloe.io import write_json

        write_json(path, {"aloe_student": dataclasses.asdict(self)})

    @classmethod
    def from_json(cls, path: str | Path) -> "StudentConfig":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        if "aloe_student" not in data:
            raise ValueError(f"{path} is not an aloe student config (no 'aloe_student' key)")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data["aloe_student"]) - fields
        if unknown:
            raise ValueError(f"{path}: unknown student config keys {sorted(unknown)}")
        try:
            return cls(**data["aloe_student"])
        except TypeError as err:  # a missing key
            raise ValueError(f"{path}: {err}") from err
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
