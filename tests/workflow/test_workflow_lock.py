"""A second Snakemake instance in a folder where one runs can neither start nor remove its outputs.

Snakemake 9.27.1 alone fails this: an instance with "Nothing to be done" deletes the running
instance's ``.snakemake/locks`` on exit (``aloe.workflow_lock`` has the details); the workflow's
own lock closes the hole. Real Snakemake processes throughout; the running job waits for a file
the test writes, so nothing depends on timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from aloe.workflow_lock import LOCK_FILE, acquire, release

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(ROOT))

SNAKEFILE = """
from aloe.workflow_lock import hold_workflow_lock
hold_workflow_lock(workflow)

rule slow:
    output: "slow.txt"
    shell: "echo run >> started.txt; while [ ! -e release ]; do sleep 0.05; done; echo slow > {output}"

rule done:
    output: "done.txt"
    shell: "echo done > {output}"
"""


def smk(workdir: Path, *args: str, snakefile: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile or workdir / "Snakefile"), "-d", str(workdir),
            "--cores", "1", *args]


def wait_for(path: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 300
    while not path.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_second_instance_is_refused_and_the_first_finishes(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "done.txt").write_text("done\n")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(smk(tmp_path, "slow.txt"), env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(tmp_path / "started.txt", first, tmp_path / "first.log")
        # the instance that has nothing to do (it used to delete the first one's locks on exit) ...
        second = subprocess.run(smk(tmp_path, "done.txt"), env=ENV, capture_output=True, text=True, timeout=300)
        assert second.returncode != 0 and "another Snakemake instance is running" in second.stderr
        assert f"pid {first.pid}" in second.stderr  # the message names the holder
        # ... and one that would start the running job again beside it, and delete its output when stopped
        third = subprocess.run(smk(tmp_path, "slow.txt"), env=ENV, capture_output=True, text=True, timeout=300)
        assert third.returncode != 0 and "another Snakemake instance is running" in third.stderr
        dry = subprocess.run(smk(tmp_path, "-n", "slow.txt"), env=ENV, capture_output=True, text=True, timeout=300)
        assert dry.returncode == 0, dry.stderr[-2000:]  # a dry run only reads: allowed meanwhile
        (tmp_path / "release").touch()
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert (tmp_path / "started.txt").read_text() == "run\n"  # the job ran once
    assert (tmp_path / "slow.txt").read_text() == "slow\n" and (tmp_path / "done.txt").read_text() == "done\n"
    # the lock dies with its holder: the next instance runs
    after = subprocess.run(smk(tmp_path, "done.txt", "slow.txt"), env=ENV, capture_output=True, text=True, timeout=300)
    assert after.returncode == 0 and "Nothing to be done" in after.stdout + after.stderr


def test_the_study_snakefile_takes_the_lock_before_any_job(tmp_path):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    args = ("results/world/world.json", "--configfile", str(tmp_path / "config.yaml"), "--config", "preset=tiny")
    acquire(tmp_path / LOCK_FILE)  # this test process plays the running instance
    try:
        child = subprocess.run([sys.executable, "-c", "from aloe.workflow_lock import acquire; acquire()"],
                               cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
        assert child.returncode != 0 and "WorkflowLockedError" in child.stderr
        refused = subprocess.run(smk(tmp_path, *args, snakefile=ROOT / "Snakefile"), env=ENV, capture_output=True,
                                 text=True, timeout=600)
    finally:
        release(tmp_path / LOCK_FILE)
    assert refused.returncode != 0 and "another Snakemake instance is running" in refused.stderr
    assert not (tmp_path / "results").exists()  # refused before a single job
    free = subprocess.run([sys.executable, "-c", "from aloe.workflow_lock import acquire; acquire()"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert free.returncode == 0, free.stderr  # released: the next instance may run
