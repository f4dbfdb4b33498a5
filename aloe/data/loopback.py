"""Serve a folder over HTTP on 127.0.0.1 (background thread) for offline downloads.

The standard library's ``ThreadingHTTPServer`` + ``SimpleHTTPRequestHandler`` do the work; this
only picks the port (a free one by default, or a fixed ``port`` when URLs were written before
the server starts), silences the per-request log and guarantees shutdown.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class LoopbackServer:
    """``with LoopbackServer(folder) as server: server.url("a/b.png")``.

    ``port=0`` (default) lets the system choose a free port; a fixed port that is taken fails
    on entry with ``OSError`` naming it.
    """

    def __init__(self, root: str | os.PathLike, port: int = 0) -> None:
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {port}")
        self.root, self.port = Path(root), int(port)
        if not self.root.is_dir():
            raise FileNotFoundError(f"cannot serve {self.root}: not a folder")
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LoopbackServer is not running (use it as a context manager)")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, relative_path: str) -> str:
        return f"{self.base_url}/{relative_path.lstrip('/')}"

    def __enter__(self) -> "LoopbackServer":
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        try:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        except OSError as err:
            raise OSError(err.errno, f"cannot serve {self.root} on 127.0.0.1:{self.port}: {err.strerror}") from err
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None
