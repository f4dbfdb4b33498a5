"""The study presets of ``config.yaml``: ``paper`` states the whole study, the others what differs.

``paper`` states the study; the protocol constants (B, stem, loss weights, the probe protocols,
...) are the schema's defaults, stated once there, and what ``aloe.registry`` knows of a teacher
or dataset it names (family, hub id, depth; source, class count) comes from the registry
(``registry_defaults``); ``validate_config`` fills in both. Another preset is an overlay on the
preset its ``extends`` key names (default ``paper``; ``tiny`` extends ``demo``): mappings merge
into the base key by key, values and lists replace. Blocks whose entries must not leak from the
base are replaced whole (``REPLACED``): the named collections (teachers, alignment sets,
evaluation datasets, the depth-ablation settings), the cluster block and each stage's resource
block; a demo teacher must not inherit ``source`` from a hub teacher, nor a CPU job 8 GPUs. The
resolved preset is complete and is what the schema checks and the workflow reads.

    python -m aloe.config show demo            # the resolved preset, as YAML
    python -m aloe.config show tiny --configfile site.yaml
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from aloe.config_schema import ConfigError, config_problems, with_defaults
from aloe.registry import BACKBONES, DATASETS

BASE_PRESET = "paper"
REPLACED = (("teachers",), ("alignment_sets",), ("evaluation", "datasets"), ("ablations", "depths", "settings"),
            ("cluster",), ("resources", "*"))


def _replaced(path: tuple[str, ...], replaced: Sequence[tuple[str, ...]]) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path)) for p in replaced)


def overlay(base: Mapping[str, Any], over: Mapping[str, Any], path: tuple[str, ...] = (),
            replaced: Sequence[tuple[str, ...]] = REPLACED) -> dict[str, Any]:
    """``base`` with ``over`` merged in (see the module docstring); neither is modified. With
    ``replaced=()`` it is Snakemake's ``--configfile`` merge (every mapping merges key by key)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        here = (*path, key)
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and not _replaced(here, replaced):
            out[key] = overlay(out[key], value, here, replaced)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_preset(config: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """The complete study block of ``preset``."""
    chain, name = [], preset
    while name != BASE_PRESET:
        if name in chain:
            raise ValueError(f"config key '{preset}.extends': presets extend each other in a circle: "
                             + " -> ".join([*chain, name]))
        if not isinstance(config.get(name), Mapping):
            where = f"'{chain[-1]}.extends'" if chain else "'preset'"
            raise ValueError(f"config key {where}: no preset {name!r} in the config")
        chain.append(name)
        name = config[name].get("extends", BASE_PRESET)
    study = copy.deepcopy(dict(config[BASE_PRESET]))
    for name in reversed(chain):
        study = overlay(study, {k: v for k, v in config[name].items() if k != "extends"})
    return study


def preset_names(config: Mapping[str, Any]) -> list[str]:
    return [k for k, v in config.items() if k != "preset" and isinstance(v, Mapping)]


def resolve_presets(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every preset block replaced by its resolved, complete study."""
    out = dict(config)
    for name in preset_names(config):
        out[name] = resolve_preset(config, name)
    return out


def _load(configfiles: Sequence[str | Path]) -> dict[str, Any]:
    """config.yaml and the ``--configfile`` files, merged key by key as Snakemake merges them."""
    config: dict[str, Any] = {}
    for path in configfiles:
        config = overlay(config, yaml.safe_load(Path(path).read_text()) or {}, replaced=())
    return config


def _filled(spec: Any, defaults: Mapping[str, Any]) -> Any:
    return {**{k: v for k, v in defaults.items() if v is not None}, **spec} if isinstance(spec, Mapping) else spec


def registry_defaults(study: Mapping[str, Any]) -> dict[str, Any]:
    """``study`` (a resolved preset) with what ``aloe.registry`` knows filled in where the preset
    leaves it out; a stated value wins (and ``study_problems`` / ``prepare_teacher`` check it):

    * ``teachers.<name>`` with a ``BACKBONES`` entry: ``family`` = the entry's family; ``source`` =
      its ``hub_id``, or ``demo`` (trained by the pipeline) when it has none; ``depth`` =
      ``training.num_layers`` for a teacher with source ``demo``, else the entry's depth (the
      published checkpoint's block count).
    * ``evaluation.datasets.<name>`` with a ``DATASETS`` entry: ``source`` = the entry's first
      source; ``classes`` = its class count where it has one, the synthetic world's
      ``num_classes`` for the world's own classes (``shapes``); else the preset states it.

    Anything else, and any malformed block, is left as it is for the schema to report."""
    out = dict(study)
    teachers = out.get("teachers")
    if isinstance(teachers, Mapping):
        out["teachers"] = {}
        for name, spec in teachers.items():
            entry = BACKBONES.get(name)
            if entry is not None and isinstance(spec, Mapping):
                source = spec.get("source", entry.hub_id or "demo")
                depth = entry.depth
                if source == "demo":
                    training = spec.get("training")
                    depth = training.get("num_layers") if isinstance(training, Mapping) else None
                spec = _filled(spec, {"family": entry.family, "source": source, "depth": depth})
            out["teachers"][name] = spec
    evaluation = out.get("evaluation")
    if isinstance(evaluation, Mapping) and isinstance(evaluation.get("datasets"), Mapping):
        world = out.get("synthetic_world")
        world_classes = world.get("num_classes") if isinstance(world, Mapping) else None

        def classes(entry: Any) -> int | None:
            return world_classes if entry.zero_shot == "world" else entry.classes

        datasets = {name: _filled(spec, {"source": DATASETS[name].sources[0], "classes": classes(DATASETS[name])})
                    if name in DATASETS else spec for name, spec in evaluation["datasets"].items()}
        out["evaluation"] = {**evaluation, "datasets": datasets}
    return out


SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def validate_config(config: Mapping[str, Any], schema_path: str | os.PathLike) -> dict[str, Any]:
    """Check ``config`` and return it with every preset resolved (``aloe.config``), the registry's
    values filled in (``registry_defaults``) and then the schema's ``default`` values (the protocol
    constants, stated once there): the top level against the schema, then each resolved preset
    against the schema's complete ``study``."""
    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    problems = config_problems(config, schema)
    resolved = dict(config)
    if not problems:
        study_schema = {**schema["$defs"]["study"], "$defs": schema["$defs"]}
        for name in preset_names(config):
            try:
                study = registry_defaults(resolve_preset(config, name))
                resolved[name] = with_defaults(study, study_schema, schema)
            except ValueError as err:
                problems.append(str(err))
                continue
            problems += config_problems(resolved[name], study_schema, (name,))
    if problems:
        raise ConfigError(f"config does not follow {schema_path} ({len(problems)} problem(s)):\n  "
                          + "\n  ".join(problems))
    return resolved


def load_config(*paths: str | Path) -> dict[str, Any]:
    """config.yaml (and site files after it) as the workflow reads it: merged, every preset
    resolved, registry and schema defaults filled in, and schema-checked."""
    return validate_config(_load(paths), SCHEMA)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aloe.config", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print a preset as the workflow reads it (resolved, schema-checked)")
    show.add_argument("preset")
    show.add_argument("--configfile", action="append", default=[], help="site files merged over config.yaml")
    show.add_argument("--base", default="config.yaml", help="the workflow config (default: ./config.yaml)")
    args = parser.parse_args(argv)
    config = load_config(args.base, *args.configfile)
    if args.preset not in preset_names(config):
        parser.error(f"no preset {args.preset!r} in {args.base} (presets: {', '.join(preset_names(config))})")
    study = config[args.preset]
    sys.stdout.write(yaml.safe_dump(study, sort_keys=False, width=110))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
