"""The rehearsal's site file changes the outside world and sizes, never the paper study's structure."""

from __future__ import annotations

from pathlib import Path

import yaml

from aloe.config import load_config
from aloe.registry import DATASETS, check_study
from aloe.rehearsal.site import merged, site_config, structure, write_site_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config.yaml")  # resolved, as the workflow reads it


def _site(tmp_path):
    paper = CONFIG["paper"]
    datasets = {n: {"source": "folder" if "folder" in DATASETS[n].sources else "manual", "path": str(tmp_path / n)}
                for n in paper["evaluation"]["datasets"]}
    urls = {n: tmp_path / f"{n}.parquet" for n in paper["alignment_sets"]}
    return site_config(hub_cache=tmp_path / "hub", url_lists=urls, eval_datasets=datasets)


def test_site_keeps_the_study_structure(tmp_path):
    site = _site(tmp_path)
    after = merged(CONFIG, site)
    assert structure(after["paper"]) == structure(CONFIG["paper"])
    check_study(after, "paper")  # still the registry's names
    # what it does change: sources, sizes, executor
    assert after["paper"]["hub"] == {"cache_dir": str((tmp_path / "hub").resolve()), "offline": True}
    assert after["paper"]["evaluation"]["datasets"]["caltech101"]["source"] == "folder"
    assert after["paper"]["evaluation"]["datasets"]["imagenet1k"]["classes"] == 1000  # kept from config.yaml
    assert after["paper"]["alignment"]["total_steps"] < 10 and after["paper"]["launcher"]["executor"] == "local"


def test_structure_sees_a_changed_study(tmp_path):
    site = _site(tmp_path)
    site["paper"]["alignment"]["lrs"] = [1e-3]
    site["paper"]["tables"] = {"main": ["vit_b16_sup"]}
    assert structure(merged(CONFIG, site)["paper"]) != structure(CONFIG["paper"])


def test_site_file_round_trips_as_yaml(tmp_path):
    path = write_site_file(tmp_path / "site.yaml", _site(tmp_path))
    assert yaml.safe_load(path.read_text()) == _site(tmp_path)
    assert path.read_text().startswith("# Rehearsal of the paper study")
