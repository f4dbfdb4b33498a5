"""Serve the rehearsal's web folder on 127.0.0.1:<port> for the duration of a study run.

``python -m aloe.rehearsal.serve ROOT --port PORT`` serves ROOT until SIGTERM/SIGINT
(``serve_forever``, on ``aloe.data.loopback.LoopbackServer``). ``start_detached_server``
starts that command in its own session (it outlives the caller, e.g. across a Snakemake run),
waits until it answers and records its pid in ``pid_file``; a second call finds it running and
returns the same pid. ``stop_server`` ends the recorded process (by pid, after checking that it
is this server) and removes the pid file. The server's output goes to ``<pid_file>.log``.
Process identity is read from ``/proc/<pid>/cmdline`` (Linux).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from aloe.data.loopback import LoopbackServer
from aloe.io import write_text

MODULE = "aloe.rehearsal.serve"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Servers started by this process, kept so that stopping them reaps them (no zombie, no warning).
_STARTED: dict[int, subprocess.Popen] = {}


def serve_forever(root: str | os.PathLike, port: int) -> None:
    """Serve ``root`` on 127.0.0.1:``port`` until SIGTERM or SIGINT (then shut down cleanly)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with LoopbackServer(root, port=port) as server:
        print(f"serving {Path(root).resolve()} at {server.base_url}", flush=True)
        stop.wait()
    print("stopped", flush=True)


def server_answers(port: int, timeout: float = 1.0) -> bool:
    """Whether an HTTP server answers on 127.0.0.1:``port`` (any HTTP status counts)."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{int(port)}/", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def _command(root: Path, port: int) -> list[str]:
    return [sys.executable, "-m", MODULE, str(root), "--port", str(int(port))]


def _cmdline(pid: int) -> list[str] | None:
    """The argument list of a live (non-zombie) process, or None."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if status.rsplit(")", 1)[-1].split()[0] == "Z":
        return None
    return [a.decode() for a in raw.split(b"\0") if a]


def _is_server(pid: int, port: int | None = None) -> bool:
    """Whether ``pid`` runs this module (on ``port``, when given)."""
    args = _cmdline(pid)
    if not args or MODULE not in args:
        return False
    return port is None or args[-2:] == ["--port", str(int(port))]


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for the server ``pid`` to end (reaping it if this process started it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = _STARTED.get(pid)
        if proc is not None and proc.poll() is not None:
            del _STARTED[pid]
        if not _is_server(pid):
            return True
        time.sleep(0.05)
    return False


def start_detached_server(
    root: str | os.PathLike, port: int, pid_file: str | os.PathLike, *, timeout: float = 30.0
) -> int:
    """Start (or find running) the server of ``root`` on ``port``; return its pid."""
    root, pid_file = Path(root).resolve(), Path(pid_file)
    if not root.is_dir():
        raise FileNotFoundError(f"cannot serve {root}: not a folder")
    pid = _read_pid(pid_file)
    if pid is not None and _is_server(pid):
        if (_cmdline(pid) or [])[1:] == _command(root, port)[1:] and server_answers(port):
            return pid
        raise RuntimeError(f"{pid_file} records a server (pid {pid}) with other arguments "
                           f"({' '.join(_cmdline(pid) or [])}); stop it first (stop_server)")
    pid_file.unlink(missing_ok=True)  # stale
    if server_answers(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is already served by a process not recorded in {pid_file}")
    log_path = Path(f"{pid_file}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        proc = subprocess.Popen(_command(root, port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while not server_answers(port, timeout=0.5):
        if proc.poll() is not None:
            raise RuntimeError(f"the server of {root} on port {port} exited with code {proc.returncode}; "
                               f"log {log_path}:\n{log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.terminate()
            proc.wait()
            raise TimeoutError(f"the server of {root} did not answer on port {port} within {timeout:g} s "
                               f"(log {log_path})")
        time.sleep(0.05)
    _STARTED[proc.pid] = proc
    write_text(pid_file, f"{proc.pid}\n")
    return proc.pid


def stop_server(pid_file: str | os.PathLike, *, timeout: float = 10.0) -> bool:
    """Stop the server recorded in ``pid_file``; True if one was running. Removes the pid file."""
    pid_file = Path(pid_file)
    pid = _read_pid(pid_file)
    if pid is None or not _is_server(pid):
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if not _gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        if not _gone(pid, timeout):
            raise RuntimeError(f"the server with pid {pid} ({pid_file}) did not end after SIGTERM and SIGKILL")
    pid_file.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder to serve")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    serve_forever(args.root, args.port)


if __name__ == "__main__":
    main()
