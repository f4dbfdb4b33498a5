"""Packaging: `pip install aloe` is the model API alone, the workflow stack is the `workflow` extra,
every rule's conda environment resolves and pins what pyproject pins, the stage script imports aloe
from its repository, and the licence and ignore rules are in place."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
WORKFLOW_ONLY = ("snakemake", "submitit", "webdataset", "img2dataset", "pandas", "pyarrow", "sklearn", "captum",
                 "matplotlib", "jsonschema", "yaml", "braceexpand", "timm")


def _conda_paths(rule_file: Path) -> list[str]:
    """The `conda:` values of a rule file (snakefmt puts each on the line after the keyword)."""
    return re.findall(r"^\s+conda:\n\s+\"([^\"]+)\"", rule_file.read_text(), flags=re.M)


def test_every_rule_names_one_environment_that_resolves_and_pins_what_pyproject_pins():
    project = PYPROJECT["project"]
    pins = sorted([*project["dependencies"], *project["optional-dependencies"]["workflow"]])
    rule_files = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    assert rule_files
    for rule_file in rule_files:
        rules = re.findall(r"^rule \w+:", rule_file.read_text(), flags=re.M)
        paths = _conda_paths(rule_file)
        assert len(paths) == len(rules), f"{rule_file.name}: {len(rules)} rules, {len(paths)} conda: entries"
        for path in paths:
            env_file = (rule_file.parent / path).resolve()  # Snakemake: relative to the file naming it
            assert env_file == ROOT / "envs" / "aloe.yaml", (rule_file.name, path)
    assert sorted(p.name for p in (ROOT / "envs").iterdir()) == ["aloe.yaml"]
    env = yaml.safe_load((ROOT / "envs" / "aloe.yaml").read_text())
    assert env["name"] == "aloe" and "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    local = [p for p in pip if p.startswith(("-e", ".", "/", "file:")) or "/" in p]
    assert not local, f"relative, local or editable pip entries: {local}"
    assert sorted(pip) == pins


def test_pip_install_aloe_is_the_model_api_and_test_installs_everything():
    project = PYPROJECT["project"]
    names = {re.split(r"[=<>]", d)[0].lower() for d in project["dependencies"]}
    assert names == {"torch", "torchvision", "transformers", "safetensors", "huggingface_hub", "pillow", "numpy",
                     "tqdm"}
    workflow = {re.split(r"[=<>]", d)[0].lower() for d in project["optional-dependencies"]["workflow"]}
    assert {"snakemake", "submitit", "webdataset", "img2dataset", "pandas", "scikit-learn", "jsonschema"} <= workflow
    assert project["optional-dependencies"]["test"][0] == "aloe[workflow]"
    assert 'pip install -e ".[test]"' in (ROOT / "README.md").read_text()
    assert project["scripts"] == {"aloe": "aloe.cli:main"}
    every = [*project["dependencies"], *(d for ds in project["optional-dependencies"].values() for d in ds)]
    assert not [d for d in every if d.startswith("timm")]
    sources = [p for p in (ROOT / "aloe").rglob("*.py") if re.search(r"^\s*(import|from) timm\b", p.read_text(), re.M)]
    assert not sources


def test_the_model_api_imports_no_workflow_package():
    """What the model API's own dependencies import is allowed (huggingface_hub imports yaml, its
    dependency); nothing aloe.models or aloe.bcos add may be of the workflow stack."""
    code = f"""
import json, sys
import numpy, PIL.Image, safetensors.torch, torch, torchvision, tqdm, huggingface_hub.utils, transformers
before = set(sys.modules)
import aloe.models, aloe.bcos
from aloe.models import bcosify, load_teacher  # the lazy names resolve
added = set(sys.modules) - before
print(json.dumps({{"added": sorted({{m.split(".")[0] for m in added}}),
                  "loaded": [m for m in {WORKFLOW_ONLY!r} if m in sys.modules]}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert "aloe" in got["added"]
    assert not set(got["added"]) & set(WORKFLOW_ONLY), got
    assert set(got["loaded"]) <= {"yaml"}, got  # yaml: by huggingface_hub, before aloe was imported


def test_the_stage_script_imports_aloe_from_its_repository():
    """Without site-packages (`python -S`: no editable install, as in a conda environment without
    aloe) the script's path set-up alone makes the repository's aloe importable."""
    script = ROOT / "workflow" / "scripts" / "stage.py"
    setup = script.read_text().split("from aloe.pipeline")[0]
    code = (f"__file__ = {str(script)!r}\n{setup}\nimport aloe, aloe.progress\n"
            "print(aloe.__file__, aloe.progress.duration(14.2))")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [str(ROOT / "aloe" / "__init__.py"), "14", "s"]


def test_licence_and_ignored_job_logs():
    text = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the aloe developers\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    assert not [f for f in tracked if re.fullmatch(r"(.*/)?slurm-[^/]*\.out", f)]
    ignored = subprocess.run(["git", "check-ignore", "slurm-4242.out", "slurm/slurm-4242_1.out"],
                             capture_output=True, text=True, cwd=ROOT)
    assert ignored.stdout.split() == ["slurm-4242.out", "slurm/slurm-4242_1.out"]
