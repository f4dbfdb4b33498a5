"""The one-node SLURM cluster the tests in this folder run against (see ``local_cluster``).

Outside CI the tests skip, saying why, when the cluster cannot start here (not root, no apt);
with CI=true they never skip: a cluster that does not start is a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "align"))  # align_helpers: tiny teachers and shards

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from local_cluster import ClusterUnavailable, LocalSlurm  # noqa: E402


@pytest.fixture(scope="package")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the local SLURM cluster did not start: {err}")
        pytest.skip(f"no local SLURM cluster on this machine: {err}")
    yield cluster
    cluster.stop()


def job_env(cluster: LocalSlurm) -> dict[str, str]:
    """What a submitting process needs: the cluster (``SLURM_CONF``) and one CPU thread, which the
    jobs inherit (bitwise-reproducible CPU training)."""
    return {**cluster.env, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def slurm(slurm_cluster: LocalSlurm):
    """The cluster, with this module's environment pointing at it."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in job_env(slurm_cluster).items():
            patch.setenv(key, value)
        yield slurm_cluster
