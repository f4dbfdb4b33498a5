"""The config's hub block reaches every stage: a launched job loads a teacher by its hub id from
a shared cache, offline, as jobs on compute nodes do after the cache was filled once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aloe.models.hub_teachers import build_teacher_model, save_to_hub_cache
from aloe.pipeline import hub_environment, run_stage

HUB_ID = "google/vit-base-patch16-224"


def _launch(tmp_path: Path, name: str) -> dict:
    return {"output": str(tmp_path / name / "teacher.json"), "resources": {"timeout_min": 5}, "executor": "local",
            "log_dir": str(tmp_path / "jobs")}


def test_launched_stage_reads_the_configured_cache_offline(tmp_path):
    cache = tmp_path / "shared_hf_cache"
    save_to_hub_cache(build_teacher_model(HUB_ID, size="tiny"), HUB_ID, cache)
    config = {"preset": "p", "p": {"hub": {"cache_dir": str(cache), "offline": True}}}
    env = hub_environment(config)
    assert env == {"HF_HUB_CACHE": str(cache.resolve()), "HF_HUB_OFFLINE": "1"}
    kwargs = {"name": "vit_b16_sup", "family": "vit", "source": HUB_ID, "out": str(tmp_path / "t" / "teacher.json")}
    record = run_stage("aloe.models.teacher_stage:prepare_teacher", kwargs, launch=_launch(tmp_path, "t"), env=env)
    assert record["source"] == HUB_ID and record["hidden_size"] == 32 and record["num_layers"] == 12
    assert json.loads((tmp_path / "t" / "teacher.json").read_text())["patch_size"] == 16


def test_without_the_cache_the_job_names_the_hub_id(tmp_path):
    config = {"preset": "p", "p": {"hub": {"cache_dir": str(tmp_path / "empty_cache"), "offline": True}}}
    kwargs = {"name": "vit_b16_sup", "family": "vit", "source": HUB_ID, "out": str(tmp_path / "u" / "teacher.json")}
    with pytest.raises(Exception, match="vit-base-patch16-224"):
        run_stage("aloe.models.teacher_stage:prepare_teacher", kwargs, launch=_launch(tmp_path, "u"),
                  env=hub_environment(config))
    assert not (tmp_path / "u" / "teacher.json").exists()


def test_no_hub_block_changes_nothing():
    assert hub_environment({"preset": "p", "p": {}}) == {}
    assert hub_environment({"preset": "p", "p": {"hub": {"cache_dir": None, "offline": False}}}) == {}
