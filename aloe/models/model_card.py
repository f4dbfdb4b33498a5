"""The model card (README.md of a student directory), written from the student's config.

It names the teacher (``config.teacher``, a hub id; "unknown" when not recorded), the
architecture, the alignment settings and the measured results when the config holds them, and
how to load and explain with the student. The text depends on the config only, so the same
student gives the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

UNKNOWN = "unknown"


def _value(v: Any) -> str:
    return f"`{json.dumps(v, sort_keys=True)}`" if isinstance(v, (dict, list)) else f"{v}"


def _table(rows: dict[str, Any], head: tuple[str, str]) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {k} | {_value(v)} |" for k, v in sorted(rows.items())]
    return lines


def model_card(config: Any, *, image_processor: Any = None, has_text_tower: bool = False) -> str:
    teacher = config.teacher or UNKNOWN
    front = ["---", "library_name: aloe", "pipeline_tag: image-feature-extraction", "tags:", "- b-cos",
             "- interpretability", "- aloe"]
    if config.teacher:
        front.append(f"base_model: {json.dumps(config.teacher)}")
    front.append("---")
    arch = {"teacher": f"`{teacher}`", "family": config.family, "blocks": config.num_layers,
            "width": config.hidden_size, "heads": config.num_heads, "patch size": config.patch_size,
            "training image size": config.image_size, "B": config.b, "stem": config.stem,
            "B-cos form": config.bcos_form, "text tower": "included (`text/`)" if has_text_tower else "none"}
    if image_processor is not None:
        arch["preprocessing"] = (f"{image_processor.transform} to {image_processor.size} px "
                                 f"({image_processor.interpolation}), RGB in [0, 1], no normalisation")
    lines = [*front, "", f"# B-cos student of `{teacher}`", "",
             "A bias-free B-cos vision encoder converted from a frozen ViT teacher and aligned to it "
             "(ALOE, *Align Once to Explain*). It mirrors the teacher token for token and explains its own "
             "outputs: the dynamic linear map W(x) applied to the input, W(x)·x, plus the contribution of its "
             "constant inputs, sums to the explained output.", "", *_table(arch, ("property", "value")), "",
             "## Alignment", ""]
    lines += _table(config.alignment, ("setting", "value")) if config.alignment else ["Not recorded."]
    lines += ["", "## Results", ""]
    lines += _table(config.results, ("metric", "value")) if config.results else ["Not recorded."]
    lines += ["", "## Usage", "", "```python",
              "import aloe  # registers the student with transformers' Auto classes",
              "from transformers import AutoModel",
              "", 'student = AutoModel.from_pretrained("<this folder or hub id>")',
              "out = student(pixel_values=student.image_processor(images)[\"pixel_values\"])",
              'e = student.explain("image.jpg", target=3, head="<linear-probe head>.safetensors")',
              "```", "", "Images of any size whose sides are multiples of the patch size are accepted; "
              "`BcosImageProcessor` resizes as the evaluation pipeline does.", ""]
    return "\n".join(lines)
