"""Checking a config against workflow/schemas/config.schema.yaml, with short errors, and filling
in the schema's defaults.

Each problem is a key path and the validator's message, not the whole schema (which is what a
failed ``snakemake.utils.validate`` prints). ``aloe.config.validate_config`` uses these on every
resolved preset.

Each problem is printed as its config key path and the validator's message (values longer than
a line are cut), not as the whole schema, which is what a failed ``snakemake.utils.validate``
prints. Standard library + jsonschema + PyYAML: the Snakefile calls it before anything else.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import jsonschema

MAX_MESSAGE = 300


class ConfigError(ValueError):
    """The config does not follow the schema."""


def _key_path(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "(top level)"


def config_problems(config: Mapping[str, Any], schema: Mapping[str, Any], prefix: tuple = ()) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        message = error.message if len(error.message) <= MAX_MESSAGE else error.message[:MAX_MESSAGE] + " ..."
        problems.append(f"{_key_path((*prefix, *error.absolute_path))}: {message}")
    return problems


def _deref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def with_defaults(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """``instance`` with every missing key that has a schema ``default`` filled in (deep copies),
    in nested objects too; what is present is kept as it is."""
    schema = _deref(schema, root)
    if not isinstance(instance, dict):
        return instance
    out = dict(instance)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:  # a default beside a $ref belongs to this key
            out[key] = copy.deepcopy(sub["default"])
        sub = _deref(sub, root)
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = with_defaults(out[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        for key in out:
            if key not in schema.get("properties", {}):
                out[key] = with_defaults(out[key], extra, root)
    return out
