"""Kept outputs: what a job leaves for a workflow that restarts after the job finished."""

from __future__ import annotations

from pathlib import Path

from aloe.launch import read_record
from aloe.launch.kept import drop_all_kept, keep_outputs, restore_outputs
from aloe.pipeline import run_stage


def test_outputs_removed_by_the_workflow_come_back_from_the_job_folder(tmp_path: Path) -> None:
    out_file, out_dir, keep = tmp_path / "a" / "train.bin", tmp_path / "b" / "model", tmp_path / "jobs" / "kept" / "k1"
    out_file.parent.mkdir()
    out_file.write_bytes(b"features")
    (out_dir / "sub").mkdir(parents=True)
    (out_dir / "sub" / "w.safetensors").write_bytes(b"weights")
    keep_outputs([out_file, out_dir], keep)
    assert (keep / "0").stat().st_ino == out_file.stat().st_ino  # a hard link, not a copy
    out_file.unlink()  # what Snakemake does before it runs the interrupted rule again
    (out_dir / "sub" / "w.safetensors").unlink()
    (out_dir / "sub").rmdir()
    out_dir.rmdir()
    assert restore_outputs([out_file, out_dir], keep)
    assert out_file.read_bytes() == b"features" and (out_dir / "sub" / "w.safetensors").read_bytes() == b"weights"
    assert drop_all_kept(tmp_path) == 1  # <jobs root>/<stage>/kept/<call>: here tmp_path/jobs/kept/k1
    assert not keep.exists() and out_file.exists() and keep.parent.exists()


def test_nothing_is_restored_from_an_unfinished_keep(tmp_path: Path) -> None:
    out, keep = tmp_path / "x.json", tmp_path / "kept" / "k2"
    out.write_text("{}")
    keep_outputs([out], keep)
    (keep / "complete").unlink()  # as if the job died while linking
    out.unlink()
    assert not restore_outputs([out], keep) and not out.exists()


def test_a_finished_job_whose_outputs_snakemake_removed_is_not_run_again(tmp_path: Path) -> None:
    """The race a killed Snakemake leaves: the rule had returned (its record says succeeded), but
    Snakemake had not recorded the job, so the restart removes the outputs and runs the rule again.
    The kept links, still there until the workflow ends, come back and nothing is submitted."""
    out, logs, log = tmp_path / "out.txt", tmp_path / "jobs" / "probe", tmp_path / "rule.log"
    launch = {"output": str(out), "resources": {}, "executor": "local", "log_dir": str(logs)}
    run_stage("aloe.io:write_text", {"path": str(out), "text": "done"}, launch=launch, log=str(log))
    first = read_record(out, logs)
    assert first.state == "succeeded" and out.read_text() == "done"
    (kept,) = (logs / "kept").iterdir()  # kept after the rule returned
    out.unlink()  # the restarted Snakemake removes the "incomplete" output
    assert run_stage("aloe.io:write_text", {"path": str(out), "text": "done"}, launch=launch, log=str(log)) is None
    assert out.read_text() == "done" and out.stat().st_ino == (kept / "0").stat().st_ino  # the job's own file
    assert read_record(out, logs).job_id == first.job_id  # nothing was submitted again
    assert f"job {first.job_id} of this call finished before the workflow recorded it" in log.read_text()
    out.unlink()  # another call for the same output is not answered by these links
    run_stage("aloe.io:write_text", {"path": str(out), "text": "other"}, launch=launch, log=str(log))
    assert out.read_text() == "other" and read_record(out, logs).job_id != first.job_id
    assert drop_all_kept(tmp_path / "jobs") == 2 and not list((logs / "kept").iterdir())
