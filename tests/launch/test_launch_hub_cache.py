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
    # the config's depth (used before any teacher is loaded) is checked against the loaded teacher
    wrong = {**kwargs, "depth": 6, "out": str(tmp_path / "w" / "teacher.json")}
    with pytest.raises(Exception, match=r"'teachers.vit_b16_sup.depth': .* has 12 blocks, config says 6"):
        run_stage("aloe.models.teacher_stage:prepare_teacher", wrong, launch=_launch(tmp_path, "w"), env=env)
    assert not (tmp_path / "w" / "teacher.json").exists()


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


def test_submit_host_stages_run_in_process_online_and_cluster_stages_offline(tmp_path):
    """where: submit_host - the stage runs in the rule's process (no sbatch); with offline: cluster it
    has the shared cache but no HF_HUB_OFFLINE: it is where the internet is, and fills the cache that
    the cluster's jobs read offline. offline: true keeps every stage offline (a cache filled beforehand)."""
    from aloe.pipeline import launch_settings, rule_resources

    config = {"preset": "p", "p": {
        "hub": {"cache_dir": str(tmp_path / "cache"), "offline": "cluster"},
        "launcher": {"executor": "slurm", "detach_on_interrupt": False}, "cluster": {"partition": "gpu"},
        "resources": {"teacher": {"where": "submit_host", "cpus_per_task": 4, "mem_gb": 32},
                      "data": {"where": "cluster", "cpus_per_task": 16, "mem_gb": 64},
                      "features": {"gpus_per_node": 1, "cpus_per_task": 12}}}}
    cache = str((tmp_path / "cache").resolve())
    assert hub_environment(config, "teacher") == {"HF_HUB_CACHE": cache}
    assert hub_environment(config, None) == {"HF_HUB_CACHE": cache}  # a rule without a block: the submit host
    for stage in ("data", "features"):
        assert hub_environment(config, stage) == {"HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1"}, stage
    config["p"]["hub"]["offline"] = True
    for stage in ("teacher", "data", None):
        assert hub_environment(config, stage) == {"HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1"}, stage
    assert launch_settings(config, "teacher", "teacher")["executor"] == "inprocess"
    assert launch_settings(config, "data", "download_alignment_set")["executor"] == "slurm"
    assert launch_settings(config, "features", "features")["resources"]["partition"] == "gpu"
    assert rule_resources(config, "teacher") == {"gpus": 0, "cpus": 0}  # holds nothing on the cluster
    assert rule_resources(config, "data") == {"gpus": 0, "cpus": 16, "mem_mib": 64 * 1024}
    config["p"]["resources"]["teacher"]["where"] = "login"
    with pytest.raises(ValueError, match=r"resources.where: expected one of \['cluster', 'submit_host'\]"):
        rule_resources(config, "teacher")
