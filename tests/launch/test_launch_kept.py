"""Kept outputs: what a job leaves for a workflow that restarts after the job finished."""

from __future__ import annotations

from pathlib import Path

from aloe.launch.kept import drop_kept, keep_outputs, restore_outputs


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
    drop_kept(keep)
    assert not keep.exists() and out_file.exists()


def test_nothing_is_restored_from_an_unfinished_keep(tmp_path: Path) -> None:
    out, keep = tmp_path / "x.json", tmp_path / "kept" / "k2"
    out.write_text("{}")
    keep_outputs([out], keep)
    (keep / "complete").unlink()  # as if the job died while linking
    out.unlink()
    assert not restore_outputs([out], keep) and not out.exists()
