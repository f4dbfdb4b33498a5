"""config.yaml's presets: paper complete with the schema's defaults, demo and tiny as overlays."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aloe.config import SCHEMA, load_config, overlay, registry_defaults, resolve_preset, validate_config
from aloe.config_schema import ConfigError
from aloe.registry import BACKBONES, UnknownNameError, check_study

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "config.yaml").read_text())


def test_overlays_merge_mappings_and_replace_collections_lists_and_stage_resources():
    base = {"alignment": {"lrs": [1, 2], "b": 2, "steps": 9}, "teachers": {"big": {"source": "hub/x", "depth": 12}},
            "resources": {"align": {"gpus_per_node": 8, "mem_gb": 480}}, "cluster": {"partition": "gpu"},
            "evaluation": {"datasets": {"a": {"classes": 3}}, "knn": {"k": 20, "temperature": 0.07}}}
    over = {"alignment": {"lrs": [3], "steps": 1}, "teachers": {"small": {"source": "demo", "depth": 2}},
            "resources": {"align": {"mem_gb": 4}}, "cluster": {},
            "evaluation": {"datasets": {"b": {"classes": 4}}, "knn": {"k": 5}}}
    out = overlay(base, over)
    assert out["alignment"] == {"lrs": [3], "b": 2, "steps": 1}  # merged key by key, the list replaced
    assert out["teachers"] == {"small": {"source": "demo", "depth": 2}}  # a named collection: replaced
    assert out["resources"] == {"align": {"mem_gb": 4}}  # a CPU job does not inherit 8 GPUs
    assert out["cluster"] == {} and out["evaluation"]["datasets"] == {"b": {"classes": 4}}
    assert out["evaluation"]["knn"] == {"k": 5, "temperature": 0.07}
    assert base["alignment"]["lrs"] == [1, 2]  # inputs untouched


def test_extends_chains_and_bad_chains_fail_naming_the_key():
    config = {"preset": "c", "paper": {"x": 1, "y": {"z": 1}}, "b": {"y": {"z": 2}}, "c": {"extends": "b", "x": 3}}
    assert resolve_preset(config, "c") == {"x": 3, "y": {"z": 2}}
    assert resolve_preset(config, "b") == {"x": 1, "y": {"z": 2}}
    with pytest.raises(ValueError, match=r"'b.extends': no preset 'nope'"):
        resolve_preset({**config, "b": {"extends": "nope"}}, "c")
    with pytest.raises(ValueError, match=r"in a circle: c -> b -> c"):
        resolve_preset({**config, "b": {"extends": "c"}}, "c")


def test_every_preset_is_complete_through_the_schema():
    resolved = load_config(ROOT / "config.yaml")
    study = yaml.safe_load(SCHEMA.read_text())["$defs"]["study"]
    for name in ("paper", "demo", "tiny"):
        assert set(study["required"]) <= set(resolved[name]), name
        # the protocol constants come from the schema's defaults, once
        assert resolved[name]["alignment"]["b"] == 2 and resolved[name]["alignment"]["stem"] == "linear"
        knn = resolved[name]["evaluation"]["knn"]
        assert knn["k"] == 20 and knn["temperature"] == 0.07
        assert resolved[name]["evaluation"]["linear_probe"]["lrs"] == "dinov2"
    assert "b" not in RAW["paper"]["alignment"] and "knn" not in RAW["paper"]["evaluation"]  # stated once
    # what a preset states wins over its base and over the defaults
    assert resolved["tiny"]["ablations"]["depths"]["settings"] == {"pool": [], "L3-2L3-L": ["L/3", "2L/3", "L"]}
    assert len(resolved["demo"]["ablations"]["depths"]["settings"]) == 5  # the paper's Table 3a, by default
    assert resolved["tiny"]["alignment"]["total_steps"] == 20 and resolved["demo"]["alignment"]["total_steps"] == 300
    assert resolved["tiny"]["alignment"]["set"] == "synthetic"  # from demo, which tiny extends
    assert resolved["demo"]["resources"]["align"].get("gpus_per_node") is None  # not the paper's 8
    assert resolved["paper"]["resources"]["explain"]["timeout_min"] == 480
    assert resolved["paper"]["alignment_sets"]["cc12m"]["url_list"] == "data/urls/cc12m.parquet"


def test_registry_and_schema_defaults_fill_in_the_values_a_preset_leaves_out():
    resolved = load_config(ROOT / "config.yaml")
    paper, demo, tiny = resolved["paper"], resolved["demo"], resolved["tiny"]
    # teachers: family, source and depth from aloe.registry.BACKBONES
    assert RAW["paper"]["teachers"]["siglip2_l16"] == {}
    assert paper["teachers"]["siglip2_l16"] == {"family": "siglip", "source": "google/siglip2-large-patch16-256",
                                                "depth": 24}
    assert paper["teachers"]["siglip2_so400m16_384"]["depth"] == 27 and paper["teachers"]["dinov3_s16"]["depth"] == 12
    assert paper["teachers"]["vit_b16_sup"]["family"] == "vit"
    for preset, layers in ((demo, 4), (tiny, 2)):  # pipeline-trained: source demo, depth = training.num_layers
        for name, spec in preset["teachers"].items():
            assert spec["source"] == "demo" and spec["family"] == BACKBONES[name].family, name
            assert spec["depth"] == spec["training"]["num_layers"] == layers, name
    # evaluation datasets: source = the registry's first source, classes = its count where it has one
    datasets = paper["evaluation"]["datasets"]
    assert datasets["food101"] == {"source": "torchvision", "classes": 101}
    assert datasets["imagenet1k"] == {"source": "manual", "classes": 1000, "path": "data/manual/imagenet"}
    assert datasets["nyuv2"]["classes"] == 0 and datasets["sun397"]["classes"] == 397
    assert demo["evaluation"]["datasets"]["shapes"] == {"source": "synthetic", "classes": 8}  # stated: world's count
    assert tiny["evaluation"]["datasets"]["digits"] == {"source": "synthetic", "classes": 10}
    # schema defaults: the paper study's protocol, the web download's knobs
    assert paper["alignment_sets"]["cc3m"] == {
        "url_list": "data/urls/cc3m.parquet", "image_size": 256, "resize_mode": "center_crop", "processes": 16,
        "threads": 64, "samples_per_shard": 10000, "retries": 2, "timeout": 10, "min_success_rate": 0.6}
    assert demo["alignment_sets"]["synthetic"]["resize_mode"] == "center_crop"
    align = paper["alignment"]
    assert (align["schedule"], align["tail_steps"], align["global_batch"], align["patience"]) == (
        "constant_cosine", 10000, 1024, 3)
    assert demo["alignment"]["patience"] == 3 and tiny["alignment"]["patience"] == 2
    ev = paper["evaluation"]
    assert ev["linear_probe"]["iterations"] == 12500 and ev["linear_probe"]["batch_size"] == 1024
    assert ev["linear_probe"]["protocol"] == ev["knn"]["protocol"] == "dinov2"
    assert paper["baselines"]["bcos_form"] == demo["baselines"]["bcos_form"] == "cosine"
    assert demo["evaluation"]["linear_probe"] == {**ev["linear_probe"], "iterations": 1500}
    assert (ev["dense"]["epochs"], ev["dense"]["lr"], ev["gridpg"]["num_grids"], ev["deletion"]["block"]) == (
        10, 5.0e-4, 500, 16)
    assert paper["hub"] == {"cache_dir": None, "offline": False}
    assert "max_attempts" not in demo["resources"]["align"]  # no schema default: the launcher's own applies


def test_stated_teacher_values_win_and_are_still_checked():
    study = {"teachers": {"vit_b16_sup": {"source": "some/folder", "depth": 6}, "mine": {}},
             "evaluation": {"datasets": {"cifar10": {"source": "folder", "path": "x"}, "other": {}}}}
    out = registry_defaults(study)
    assert out["teachers"] == {"vit_b16_sup": {"family": "vit", "source": "some/folder", "depth": 6}, "mine": {}}
    assert out["evaluation"]["datasets"] == {"cifar10": {"source": "folder", "classes": 10, "path": "x"},
                                             "other": {}}
    assert study["teachers"]["vit_b16_sup"] == {"source": "some/folder", "depth": 6}  # input untouched
    bad = copy.deepcopy(RAW)
    bad["paper"]["teachers"]["dinov3_b16"] = {"family": "vit"}
    bad["paper"]["teachers"]["mine"] = {}
    with pytest.raises(ConfigError, match=r"paper.teachers.mine: 'depth' is a required property"):
        validate_config(bad, SCHEMA)
    del bad["paper"]["teachers"]["mine"]
    with pytest.raises(UnknownNameError, match=r"paper.teachers.dinov3_b16.family: dinov3_b16 is a dinov3 model"):
        check_study(validate_config(bad, SCHEMA), "paper")


def test_errors_name_the_preset_key_path():
    bad = copy.deepcopy(RAW)
    bad["tiny"]["alignment"]["lr_typo"] = 1
    bad["demo"]["evaluation"]["knn"] = {"k": 0}
    with pytest.raises(ConfigError) as err:
        validate_config(bad, SCHEMA)
    text = str(err.value)
    assert "tiny.alignment: Additional properties are not allowed ('lr_typo' was unexpected)" in text
    assert "demo.evaluation.knn.k: 0 is less than the minimum of 1" in text
    assert "tiny.evaluation.knn.k" in text  # tiny extends demo: it inherits the bad value, and says so
    assert len(text.splitlines()) < 10


def test_show_prints_the_resolved_preset():
    out = subprocess.run([sys.executable, "-m", "aloe.config", "show", "tiny"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert yaml.safe_load(out) == load_config(ROOT / "config.yaml")["tiny"]
    missing = subprocess.run([sys.executable, "-m", "aloe.config", "show", "nope"], cwd=ROOT, capture_output=True,
                             text=True)
    assert missing.returncode != 0 and "no preset 'nope'" in missing.stderr
