"""Rule logs a person can follow: real stages run through ``run_stage`` as the workflow runs them,
directly and as a local submitit job, each writing a start line, plain progress lines and a summary
line that states the stage's own result into the rule's log file; no carriage-return bars."""

from __future__ import annotations

import logging
import os
import re
import socket
import warnings

import pytest

from aloe.joblog import log_to, quiet_libraries
from aloe.pipeline import run_stage
from aloe.records import read_records

from eval_helpers import save_tiny_teacher

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"  # LOG_FORMAT's asctime
DURATION = r"\d+(\.\d)? (s|min|h)"


@pytest.fixture
def bars_on(monkeypatch):
    """The conftest switches transformers' bars and warnings off; a job starts with them on."""
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    with warnings.catch_warnings():  # huggingface_hub read the variable at import: it warns, and enables them
        warnings.simplefilter("ignore")
        hf_logging.enable_progress_bar()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    yield
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity(level)
    hf_logging.enable_default_handler()
    hf_logging.disable_propagation()


def _line(text: str, pattern: str) -> re.Match:
    found = re.search(rf"^{STAMP} INFO aloe\.stage: {pattern}$", text, flags=re.M)
    assert found, f"no line {pattern!r} in\n{text}"
    return found


def test_stages_log_start_progress_and_summary_lines(tmp_path, world, bars_on):
    teacher = save_tiny_teacher(tmp_path / "teacher", "vit")
    feats = {s: str(tmp_path / f"{s}.safetensors") for s in ("train", "test")}
    log = tmp_path / "logs" / "rule.log"
    label = "features tiny-vit/teacher/shapes"
    run_stage("aloe.eval.stages:run_features", dict(
        train_out=feats["train"], test_out=feats["test"], backbone_path=str(teacher), backbone_kind="teacher",
        dataset_dir=str(world / "shapes"), dataset="shapes", batch_size=16, device="auto"),
        log=str(log), label=label, outputs=[feats["train"], feats["test"]])
    lp_out = tmp_path / "lp.json"
    run_stage("aloe.eval.probe_stages:run_linear_probe", dict(
        out=str(lp_out), train_features=feats["train"], test_features=feats["test"], backbone="tiny-vit",
        variant="teacher", dataset="shapes", iterations=300, batch_size=16, lrs=[0.1, 1.0, 10.0], device="cpu"),
        log=str(log), label="linear_probe tiny-vit/teacher/shapes", outputs=[str(lp_out)])
    text = log.read_bytes().decode()  # read_text() would turn "\r" into "\n"
    assert "\r" not in text and "Loading weights" not in text and "it/s]" not in text
    host, pid = re.escape(socket.gethostname()), os.getpid()
    _line(text, rf"{label}: start aloe\.eval\.stages:run_features on {host} \(pid {pid}\), device cpu \(\d+ "
          rf"threads?\); output {re.escape(feats['train'])} \(\+1 more\)")
    # the loader's 48 train and 24 test images, in batches of 16: a line at each 10 % boundary crossed
    for n in (16, 32, 48):
        assert re.search(rf"aloe\.progress: features shapes train: {n}/48 images \({round(100 * n / 48)} %\), "
                         r"[\d.]+ images/s", text), n
    assert re.search(r"aloe\.progress: features shapes test: 24/24 images \(100 %\)", text)
    _line(text, rf"{label}: cached train 48 samples, test 24 samples \(last 1 block\(s\)\), {DURATION}")
    rec = read_records(lp_out)[0]
    assert rec["params"]["iterations"] == 300
    assert any(rec["params"]["best_lr"] == pytest.approx(lr / 16) for lr in (0.1, 1.0, 10.0))  # scaled by 16/256
    for it in range(30, 301, 30):
        assert re.search(rf"aloe\.progress: linear probe \(3 LRs, 43 samples\): {it}/300 it \({it // 3} %\)", text)
    _line(text, rf"linear_probe tiny-vit/teacher/shapes: top-1 {rec['value']:.2f} at lr "
          rf"{re.escape(format(rec['params']['best_lr'], 'g'))}, 300 it, {DURATION}")
    assert "[transformers]" not in text and "\x1b[" not in text  # transformers' lines in this log's format

    # the same stage as a job (a local submitit process): its lines reach the rule log too
    knn_out, job_log = tmp_path / "knn.json", tmp_path / "logs" / "knn.log"
    launch = {"output": str(knn_out), "resources": {"timeout_min": 5}, "executor": "local",
              "log_dir": str(tmp_path / "jobs")}
    run_stage("aloe.eval.probe_stages:run_knn", dict(out=str(knn_out), train_features=feats["train"],
              test_features=feats["test"], backbone="tiny-vit", variant="teacher", dataset="shapes", k=5,
              device="auto"), launch=launch, log=str(job_log), label="knn tiny-vit/teacher/shapes")
    text = job_log.read_bytes().decode()
    assert "\r" not in text
    assert re.search(rf"^{STAMP} INFO aloe\.launch\.launcher: submitted job \d+ \(attempt 1\)", text, flags=re.M)
    start = _line(text, rf"knn tiny-vit/teacher/shapes: start aloe\.eval\.probe_stages:run_knn on {host} "
                        r"\(pid (\d+)\), "
                  r"device cpu \(\d+ threads?\); output .*knn\.json")
    assert int(start.group(1)) != pid  # written by the job's process
    _line(text, rf"knn tiny-vit/teacher/shapes: top-1 {read_records(knn_out)[0]['value']:.2f} \(k=5\), {DURATION}")


def test_a_failing_stage_logs_why_and_how_long(tmp_path):
    log = tmp_path / "rule.log"
    with pytest.raises(FileNotFoundError):
        run_stage("aloe.eval.probe_stages:run_knn", dict(out=str(tmp_path / "k.json"),
                                                          train_features="missing.safetensors",
                                                          test_features="missing.safetensors", backbone="b",
                                                          variant="v", dataset="d"),
                  log=str(log), label="knn b/v/d")
    text = log.read_bytes().decode()
    assert re.search(rf"^{STAMP} ERROR aloe\.stage: knn b/v/d: failed after {DURATION}: FileNotFoundError: ", text,
                     flags=re.M)
    assert "Traceback (most recent call last)" in text


def test_transformers_goes_through_the_log_and_its_known_harmless_warning_is_dropped(tmp_path, bars_on):
    log = tmp_path / "rule.log"
    hf = logging.getLogger("transformers.configuration_utils")
    with log_to(log):
        quiet_libraries()
        # transformers 5's default SiglipTextConfig(), diffed against on every SigLIP save and load
        hf.warning("Model config: bos_token_id must be `None` or an integer within the vocabulary (between 0 and "
                   "31999), got 49406. This may result in unexpected behavior.")
        hf.warning("Model config: bos_token_id must be `None` or an integer within the vocabulary (between 0 and "
                   "39), got 49406. This may result in unexpected behavior.")
        hf.info("an info line of transformers")
    text = log.read_bytes().decode()
    assert "31999" not in text and "info line" not in text
    assert re.search(rf"^{STAMP} WARNING transformers\.configuration_utils: Model config: bos_token_id must be "
                     r"`None` or an integer within the vocabulary \(between 0 and 39\)", text, flags=re.M)


def test_summaries_of_records_files_and_unexpected_results(tmp_path):
    from aloe.stage_summaries import summarize

    dense = [{"metric": "depth_delta1", "value": 0.51234, "status": "ok"},
             {"metric": "depth_rmse", "value": 1.5, "status": "ok"}]
    assert summarize("aloe.eval.stages:run_dense_probe", dense, {}) == "depth_delta1 0.5123, depth_rmse 1.50"
    gone = {"metric": "gridpg", "value": None, "status": "unavailable", "reason": "too few classes",
            "params": {"method": "bcos", "num_grids": 0, "protocols": {"gridpg": "resize"}}}
    assert summarize("aloe.eval.stages:run_gridpg", gone, {}) == (
        "bcos score unavailable (too few classes) on 0 grid(s), protocol resize")
    (tmp_path / "t.csv").write_text("x" * 1500)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"y" * 20)
    outputs = [str(tmp_path / "t.csv"), str(tmp_path / "d"), str(tmp_path / "missing.tex")]
    assert summarize("aloe.tables.stages:run_table", object(), {}, outputs) == (
        f"wrote {tmp_path / 't.csv'} (1.5 kB), {tmp_path / 'd'} (20 B)")
    assert summarize("aloe.tables.stages:run_table_html", "<html>", {"out_html": str(tmp_path / "t.csv")}) == (
        f"wrote {tmp_path / 't.csv'} (1.5 kB)")
    # a summariser that meets an unexpected result says so and never fails the stage
    assert summarize("aloe.eval.probe_stages:run_knn", {"metric": "knn_top1"}, {}, outputs[:1]) == (
        f"wrote {tmp_path / 't.csv'} (1.5 kB) (no summary: KeyError: 'value')")
