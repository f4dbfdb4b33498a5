"""Rehearsal web: url lists in the real column layout, downloaded by the real img2dataset stage
from the detached fixed-port server, broken URLs counted; the server starts once and stops."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pandas as pd
import pytest

from aloe.data.img2dataset_stage import download_alignment_set
from aloe.data.loopback import LoopbackServer
from aloe.data.tario import SkipCounter, iter_shard
from aloe.rehearsal.serve import server_answers, start_detached_server, stop_server
from aloe.rehearsal.web import write_url_lists

OPTIONS = dict(image_size=32, processes=1, threads=4, samples_per_shard=8, retries=0, timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_url_lists_download_from_the_detached_server(tmp_path):
    port = free_port()
    web = write_url_lists(tmp_path / "web", ("cc3m", "yfcc15m"), port=port, num_images=10, broken=1, image_size=32)
    assert web["base_url"] == f"http://127.0.0.1:{port}" and sorted(web["url_lists"]) == ["cc3m", "yfcc15m"]
    assert web["counts"]["cc3m"] == {"ok": 10, "missing": 1, "not_image": 1, "empty": 1}
    frames = {name: pd.read_parquet(path) for name, path in web["url_lists"].items()}
    for name, frame in frames.items():
        assert list(frame.columns) == ["url", "caption"] and len(frame) == 13
        assert frame["url"].str.startswith(f"http://127.0.0.1:{port}/{name}/").all()
    served = tmp_path / "web" / "served"
    assert (served / "cc3m/images/000000.jpg").read_bytes() != (served / "yfcc15m/images/000000.jpg").read_bytes()
    assert not server_answers(port)

    pid_file = tmp_path / "run" / "server.pid"
    (tmp_path / "run").mkdir()
    pid_file.write_text(f"{os.getpid()}\n")  # a stale pid file naming some other process is replaced
    pid = start_detached_server(web["serve_root"], port, pid_file)
    try:
        assert pid != os.getpid() and os.getsid(pid) == pid  # its own session: outlives the caller's group
        assert pid_file.read_text() == f"{pid}\n" and server_answers(port)
        assert start_detached_server(web["serve_root"], port, pid_file) == pid  # already running: same one
        with pytest.raises(RuntimeError, match="with other arguments"):
            start_detached_server(tmp_path, port, pid_file)

        summary = download_alignment_set(web["url_lists"]["cc3m"], tmp_path / "shards", min_success_rate=0.5, **OPTIONS)
        assert (summary["count"], summary["successes"]) == (13, 10)
        assert (summary["failed_to_download"], summary["failed_to_resize"]) == (1, 2)  # 404; text + empty file
        assert summary["failures_by_reason"]["HTTP Error 404: File not found"] == 1
        counter = SkipCounter()
        samples = [s for n in summary["shards"] for s in iter_shard(tmp_path / "shards" / n, counter)]
        ok = frames["cc3m"][~frames["cc3m"]["url"].str.contains("/missing/|/broken/")]
        assert counter.total == 0 and sorted(s["txt"].decode() for s in samples) == sorted(ok["caption"])
    finally:
        stopped = stop_server(pid_file)
    assert stopped and not pid_file.exists() and not server_answers(port)
    log = Path(f"{pid_file}.log").read_text()  # shut down cleanly on SIGTERM
    assert f"at http://127.0.0.1:{port}\n" in log and log.endswith("stopped\n")
    assert not os.path.exists(f"/proc/{pid}")  # ended and reaped
    assert stop_server(pid_file) is False  # nothing left to stop


def test_url_lists_are_deterministic(tmp_path):
    first = write_url_lists(tmp_path / "a", ("cc12m",), port=8123, num_images=6, broken=2, seed=5)
    second = write_url_lists(tmp_path / "b", ("cc12m",), port=8123, num_images=6, broken=2, seed=5)
    pd.testing.assert_frame_equal(pd.read_parquet(first["url_lists"]["cc12m"]),
                                  pd.read_parquet(second["url_lists"]["cc12m"]))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a/served").rglob("*.jpg"))
    assert len(files) == 6 + 2 * 2
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    third = write_url_lists(tmp_path / "c", ("cc12m",), port=8123, num_images=6, broken=2, seed=6)
    assert not pd.read_parquet(third["url_lists"]["cc12m"]).equals(pd.read_parquet(first["url_lists"]["cc12m"]))


def test_a_taken_port_is_reported(tmp_path):
    (tmp_path / "site").mkdir()
    with LoopbackServer(tmp_path / "site") as other:
        port = int(other.base_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match=f"port {port} on 127.0.0.1 is already served by a process not recorded"):
            start_detached_server(tmp_path / "site", port, tmp_path / "server.pid")
        with pytest.raises(OSError, match=f"cannot serve .* on 127.0.0.1:{port}"):
            with LoopbackServer(tmp_path / "site", port=port):
                pass
    assert not (tmp_path / "server.pid").exists()


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="port must be in \\[1, 65535\\], got 0"):
        write_url_lists(tmp_path, port=0)
    with pytest.raises(ValueError, match="names must be distinct"):
        write_url_lists(tmp_path, ("cc3m", "cc3m"), port=8000)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        start_detached_server(tmp_path / "nowhere", free_port(), tmp_path / "server.pid")
