"""config.yaml's presets: paper complete with the schema's defaults, demo and tiny as overlays."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aloe.config import SCHEMA, load_config, overlay, resolve_preset, validate_config
from aloe.config_schema import ConfigError

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
    assert "b" not in RAW["paper"]["alignment"] and "k" not in RAW["paper"]["evaluation"]["knn"]  # stated once
    # what a preset states wins over its base and over the defaults
    assert resolved["tiny"]["ablations"]["depths"]["settings"] == {"pool": [], "L3-2L3-L": ["L/3", "2L/3", "L"]}
    assert len(resolved["demo"]["ablations"]["depths"]["settings"]) == 5  # the paper's Table 3a, by default
    assert resolved["tiny"]["alignment"]["total_steps"] == 20 and resolved["demo"]["alignment"]["total_steps"] == 300
    assert resolved["tiny"]["alignment"]["set"] == "synthetic"  # from demo, which tiny extends
    assert resolved["demo"]["resources"]["align"].get("gpus_per_node") is None  # not the paper's 8
    assert resolved["paper"]["resources"]["explain"]["timeout_min"] == 480
    assert resolved["paper"]["alignment_sets"]["cc12m"]["url_list"] == "data/urls/cc12m.parquet"


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
