import pytest

from aloe.depths import resolve_depths


def test_symbolic_depths():
    assert resolve_depths("default", 12) == [4, 8, 12]
    assert resolve_depths(["L/3", "2L/3", "L"], 12) == [4, 8, 12]
    assert resolve_depths(["L"], 24) == [24]
    assert resolve_depths(["all"], 3) == [1, 2, 3]
    assert resolve_depths([3, 7, 11], 12) == [3, 7, 11]  # the authors' indices, given explicitly
    assert resolve_depths(["L/3", "2L/3", "L"], 2) == [1, 2]  # clamped and deduplicated


def test_symbolic_depths_reject_unknown():
    with pytest.raises(ValueError, match="config key 'depths'"):
        resolve_depths(["L/2"], 12)


def test_run_config_names_blocks_and_keeps_the_default_as_none(tmp_path):
    """alignment_job resolves the symbols against teacher_depth, so the run folder's digest names
    blocks; 'default' stays None (the objective's default), as the run folders of finished runs have it."""
    from aloe.align.stages import alignment_job

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "train-00000.tar").write_bytes(b"")

    def train_depths(depths):
        job = alignment_job(tmp_path / "result.json", teacher="t", teacher_depth=12, b=2, stem="linear", train={},
                            shards=str(shards), depths=depths)
        return job.job["train"]["depths"]

    assert train_depths("default") is None
    assert train_depths(["L/3", "2L/3", "L"]) == [4, 8, 12]
    assert train_depths(["all"]) == list(range(1, 13))
    with pytest.raises(ValueError, match="config key 'depths'"):
        train_depths([13])


def _run(result, teacher_dir, shard_dir, heldout_dir, **train):
    from aloe.align.stages import alignment_job

    cfg = dict(lr=3e-3, total_steps=4, warmup_steps=1, global_batch=8, micro_batch=4, progress=False, seed=0,
               num_workers=0, shuffle_buffer=16, eval_every=0, ckpt_every=2)
    cfg.update(train)
    job = alignment_job(result, teacher=teacher_dir, teacher_depth=3, b=2, stem="linear", train=cfg,
                        shards=str(shard_dir), heldout_shards=str(heldout_dir))
    return job, job()


def test_changed_setting_retrains_in_a_fresh_run_folder(teacher_dir, shards, tmp_path):
    """A changed alignment setting trains anew in its own folder (never resumes the other run's
    checkpoint); the same settings find their folder again; selection reads the run folder."""
    import json
    from pathlib import Path

    from aloe.align.stages import run_dir_of, select_backbone

    shard_dir, heldout_dir = Path(shards["train"][0]).parent, Path(shards["heldout"][0]).parent
    result = tmp_path / "align" / "lr0.003" / "result.json"
    job_a, out_a = _run(result, teacher_dir, shard_dir, heldout_dir)
    run_a = run_dir_of(result)
    assert run_a.parent == result.parent / "runs" and (run_a / "checkpoints").is_dir()
    assert json.loads(result.read_text())["run_dir"] == str(run_a) and out_a["step"] == 4
    assert json.loads(result.read_text())["config"]["lambda_global"] == 1.0

    result.unlink()  # what Snakemake does before rerunning a job whose params changed
    job_b, out_b = _run(result, teacher_dir, shard_dir, heldout_dir, lambda_global=0.5)
    run_b = run_dir_of(result)
    assert run_b != run_a and run_b.parent == run_a.parent
    assert json.loads(result.read_text())["config"]["lambda_global"] == 0.5
    assert json.loads((run_b / "result.json").read_text())["resumed_at"] == []  # trained from scratch
    assert (run_a / "result.json").is_file()  # the other run is left as it was

    # the same settings and data again: the same folder (ckpt_every may change on resume: same digest);
    # the workflow only reruns a job whose output it wants anew (forced, or removed), so a finished run
    # there is set aside and trained again rather than "resumed" for 0 steps
    result.unlink()
    job_c, out_c = _run(result, teacher_dir, shard_dir, heldout_dir, lambda_global=0.5, ckpt_every=1)
    assert job_c.job["train"]["out_dir"] == str(run_b) and out_c["step"] == 4
    assert json.loads((run_b / "result.json").read_text())["resumed_at"] == []
    assert (run_b.parent / (run_b.name + ".previous") / "result.json").is_file()
    assert json.loads(result.read_text())["data_fingerprint"] == job_c.job["data"]

    record = select_backbone(tmp_path / "backbone", run_results=[str(result)])
    assert record["selected"] == str(run_b) and (tmp_path / "backbone" / "model.safetensors").is_file()


def test_changed_data_changes_the_run_folder(teacher_dir, shards, tmp_path):
    import shutil
    from pathlib import Path

    from aloe.align.stages import alignment_job

    data = tmp_path / "shards"
    shutil.copytree(Path(shards["train"][0]).parent, data)
    cfg = dict(total_steps=2, global_batch=8, micro_batch=4, num_workers=0)
    before = alignment_job(tmp_path / "r" / "result.json", teacher=teacher_dir, teacher_depth=3, b=2, stem="linear",
                           train=cfg, shards=str(data))
    first = sorted(data.glob("*.tar"))[0]
    shutil.copy(first, data / "train-99999.tar")  # e.g. the set was downloaded again, with more samples
    (data / "summary.json").write_text('{"url_list": "/tmp/other"}')
    after = alignment_job(tmp_path / "r" / "result.json", teacher=teacher_dir, teacher_depth=3, b=2, stem="linear",
                          train=cfg, shards=str(data))
    assert before.job["data"] != after.job["data"]
    assert before.job["train"]["out_dir"] != after.job["train"]["out_dir"]
    again = alignment_job(tmp_path / "r" / "result.json", teacher=teacher_dir, teacher_depth=3, b=2, stem="linear",
                          train=cfg, shards=str(data))
    assert again.job["train"]["out_dir"] == after.job["train"]["out_dir"]


def test_alignment_run_logs_progress_and_its_result_in_the_rule_log(teacher_dir, shards, tmp_path):
    """A training run as the align rule runs it (a checkpointable job, here in the rule's process):
    start, plain progress and held-out lines, and a summary of its result, once each in the log."""
    import re
    from pathlib import Path

    from aloe.io import read_json
    from aloe.pipeline import run_stage

    train = dict(lr=3e-3, total_steps=4, warmup_steps=1, global_batch=8, micro_batch=4, progress=False, seed=0,
                 num_workers=0, shuffle_buffer=16, eval_every=2, ckpt_every=2, device="auto")
    result, log = tmp_path / "run" / "result.json", tmp_path / "align.log"
    kwargs = dict(result=str(result), teacher=str(teacher_dir), teacher_depth=3, b=2, stem="linear", train=train,
                  shards=str(Path(shards["train"][0]).parent), heldout_shards=str(Path(shards["heldout"][0]).parent))
    launch = {"output": str(result), "resources": {}, "executor": "inprocess", "log_dir": str(tmp_path / "jobs"),
              "checkpointable": True}
    run_stage("aloe.align.stages:run_align_run", kwargs, launch=launch, log=str(log), label="align_run t/main/lr3e-3")
    text = log.read_bytes().decode()
    record = read_json(result)
    assert "\r" not in text and record["step"] == 4
    starts = re.findall(r"INFO aloe\.stage: align_run t/main/lr3e-3: start aloe\.align\.stages:run_align_run on .*, "
                        r"device cpu \(\d threads?\); output .*result\.json$", text, flags=re.M)
    assert len(starts) == 1  # the rule's and the job's log are one file here: written once
    for step in (1, 2, 3, 4):
        assert re.search(rf"INFO aloe\.progress: align: {step}/4 steps \({25 * step} %\), .*, loss [\d.]+$", text,
                         flags=re.M), step
    for step in (0, 2, 4):
        assert re.search(rf"INFO aloe\.align\.train: align: step {step} held-out loss [\d.e-]+ \(best", text), step
    summary = f"4 steps, best held-out loss {record['best_heldout']:.5g}"
    assert re.search(rf"INFO aloe\.stage: align_run t/main/lr3e-3: {re.escape(summary)}, [\d.]+ (s|min)$", text,
                     flags=re.M), text
