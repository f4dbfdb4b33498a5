"""Validate the workflow config against workflow/schemas/config.schema.yaml, with short errors.

Each problem is printed as its config key path and the validator's message (values longer than
a line are cut), not as the whole schema, which is what a failed ``snakemake.utils.validate``
prints. Standard library + jsonschema + PyYAML: the Snakefile calls it before anything else.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jsonschema
import yaml

MAX_MESSAGE = 300


class ConfigError(ValueError):
    """The config does not follow the schema."""


def _key_path(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "(top level)"


def config_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        message = error.message if len(error.message) <= MAX_MESSAGE else error.message[:MAX_MESSAGE] + " ..."
        problems.append(f"{_key_path(error.absolute_path)}: {message}")
    return problems


def validate_config(config: Mapping[str, Any], schema_path: str | os.PathLike) -> None:
    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    problems = config_problems(config, schema)
    if problems:
        raise ConfigError(f"config does not follow {schema_path} ({len(problems)} problem(s)):\n  "
                          + "\n  ".join(problems))
