"""The teacher stage: make a teacher loadable and record what it is.

Hub teachers are loaded once (which fills the HF cache where there is network) and checked
against the configured family; demo teachers are first trained on the synthetic world. Either
way ``teacher.json`` records the source, family and layout that later stages rely on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

from aloe.io import write_json
from aloe.models.teacher import load_teacher


def prepare_teacher(out: str | os.PathLike, *, name: str, family: str, source: str, depth: Optional[int] = None,
                    training: Optional[Mapping[str, Any]] = None, seed: int = 0,
                    world: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """``source`` is a hub id / folder, or "demo" with ``training`` (demo_teachers keywords) and
    ``world`` (image_size, num_classes of the synthetic world). ``depth`` (config key
    ``teachers.<name>.depth``, which resolves symbolic depths and dense blocks before any teacher
    is loaded) must be the loaded teacher's number of blocks."""
    summary = None
    if source == "demo":
        from aloe.models.demo_teachers import build_demo_teacher

        if training is None or world is None:
            raise ValueError(f"teacher {name!r}: source 'demo' needs the config keys 'training' and the "
                             "synthetic world")
        source = str(Path(out).parent / "model")
        train = dict(training)
        summary = build_demo_teacher(family, source, seed=seed, image_size=world["image_size"],
                                     num_images=train.pop("num_images"), num_shape_classes=world["num_classes"],
                                     **train)
    teacher = load_teacher(source)
    if teacher.family != family:
        raise ValueError(f"teacher {name!r} ({source}) is a {teacher.family} model, config says family {family!r}")
    if depth is not None and teacher.num_layers != depth:
        raise ValueError(f"config key 'teachers.{name}.depth': {source} has {teacher.num_layers} blocks, "
                         f"config says {depth}")
    record = {"name": name, "source": source, "family": family, "image_size": teacher.image_size,
              "patch_size": teacher.patch_size, "hidden_size": teacher.hidden_size, "num_layers": teacher.num_layers,
              "num_prefix_tokens": teacher.num_prefix_tokens, "mean": teacher.mean, "std": teacher.std,
              "training": summary}
    write_json(out, record)
    return record
