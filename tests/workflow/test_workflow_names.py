"""One name per thing: every preset's names are the registry's, checked before any job, and every
job of every preset binds to the signature of the stage function it calls."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aloe.config import load_config
from aloe.registry import BACKBONES, DATASETS, TABLE_NAMES, UnknownNameError, check_study
from aloe.tables.specs import TABLES

ROOT = Path(__file__).resolve().parents[2]
RESOLVED = load_config(ROOT / "config.yaml")  # as the workflow reads it (the broken copies below edit it)
PRESETS = ("demo", "tiny", "paper")
sys.path.insert(0, str(Path(__file__).parent))
from test_workflow_static import ENV, snakemake  # noqa: E402


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_uses_registry_names(preset):
    check_study(RESOLVED, preset)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_every_preset_binds_to_its_stage_function(preset):
    out = subprocess.run([sys.executable, str(ROOT / "tests/workflow/bind_jobs.py"), preset], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["problems"] == []
    counts = result["counts"]
    # the whole DAG was built: every stage family has jobs
    for rule in ("teacher", "align_run", "baseline_run", "features", "linear_probe", "knn", "zero_shot",
                 "dense_probe", "gridpg", "table", "explanation_panels", "explanation_grid"):
        assert counts.get(rule, 0) >= 1, rule
    if preset == "paper":
        assert counts["prepare_eval_dataset"] == 11 and counts["features"] == 263 and counts["table"] == 11


def test_paper_preset_names_every_paper_dataset_and_teacher():
    paper = RESOLVED["paper"]
    assert sorted(paper["evaluation"]["datasets"]) == sorted(n for n, e in DATASETS.items()
                                                              if e.paper_avg or n == "nyuv2")
    assert paper["evaluation"]["classification"] == [n for n, e in DATASETS.items() if e.paper_avg]
    for name, spec in paper["teachers"].items():
        assert BACKBONES[name].hub_id == spec["source"], name


def test_table_specs_are_the_registry_tables():
    assert tuple(TABLES) == TABLE_NAMES


def _broken(mutate):
    cfg = copy.deepcopy(RESOLVED)
    mutate(cfg["paper"])
    with pytest.raises(UnknownNameError) as err:
        check_study(cfg, "paper")
    return str(err.value)


def test_unknown_dataset_names_key_path_and_known_names():
    def rename(study):
        study["evaluation"]["datasets"]["imagenet"] = study["evaluation"]["datasets"].pop("imagenet1k")

    text = _broken(rename)
    assert "paper.evaluation.datasets.imagenet: unknown evaluation dataset 'imagenet'" in text
    assert "imagenet1k, caltech101" in text
    # every reference to the old name is reported, with its own key path
    assert "paper.evaluation.classification[0]: 'imagenet1k' is not a key of paper.evaluation.datasets" in text
    assert "paper.baselines.supervised_dataset" in text and "paper.evaluation.gridpg.dataset" in text


def test_teacher_without_label_and_wrong_family():
    def rename(study):
        study["teachers"]["dinov3_vitb16"] = study["teachers"].pop("dinov3_b16")
        study["teachers"]["vit_b16_sup"]["family"] = "dinov3"

    text = _broken(rename)
    assert "paper.teachers.dinov3_vitb16: no display label for teacher 'dinov3_vitb16'" in text
    assert "paper.tables.main[2]: 'dinov3_b16' is not a key of paper.teachers" in text
    assert "paper.teachers.vit_b16_sup.family: vit_b16_sup is a vit model, config says 'dinov3'" in text


def test_zero_shot_dataset_without_class_names():
    text = _broken(lambda s: s["evaluation"]["zero_shot"].update(datasets=["dtd"]))
    assert "paper.evaluation.zero_shot.datasets[0]: no class names are shipped for 'dtd'" in text


def test_wrong_source_and_class_count():
    def change(study):
        study["evaluation"]["datasets"]["cifar10"].update(source="manual", classes=11)

    text = _broken(change)
    assert "paper.evaluation.datasets.cifar10.source: cifar10 cannot come from 'manual'" in text
    assert "paper.evaluation.datasets.cifar10.classes: cifar10 has 10 classes, config says 11" in text


def test_cross_field_rules():
    def change(study):
        study["alignment"]["micro_batch"] = 100
        study["ablations"]["fractions"]["settings"] = [0.001, 0.5]

    text = _broken(change)
    assert "paper.alignment.global_batch: 1024 is not a multiple of paper.alignment.micro_batch (100)" in text
    assert "paper.ablations.fractions.settings[1]: 0.5 is not in paper.splits.fractions" in text


def test_dag_refuses_an_unknown_name_before_any_job(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"paper": {"evaluation": {"zero_shot": {"datasets": ["flowers102"]}}}}))
    out = snakemake("-n", "--config", "preset=paper", f"--configfile={site}", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "paper.evaluation.zero_shot.datasets[0]: no class names are shipped for 'flowers102'" in text
    assert "Building DAG" not in text
