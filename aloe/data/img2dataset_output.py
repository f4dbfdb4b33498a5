"""img2dataset's output, as it comes: every byte into its own log file beside the shards, and
plain lines into the stage's log (``logging``, hence the rule log). Its tqdm counter of finished
shards (``7it [00:25, 3.66s/it]``, redrawn with carriage returns) becomes ``aloe.progress`` lines
out of the expected number of shards; its messages and per-shard statistics ("worker - success:
0.998 - ...", "total - ...") are passed on as they are.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from aloe.progress import Progress

_log = logging.getLogger("img2dataset")
_COUNTER = re.compile(r"^\s*(\d+)it \[[^\]]*\]")


class OutputForwarder:
    """Turns the byte stream of img2dataset's stdout and stderr into log lines."""

    def __init__(self, shards: int | None):
        self.progress = Progress("img2dataset", shards, unit="shards")
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        pieces = re.split(rb"[\r\n]", self.pending + chunk)
        self.pending = pieces.pop()
        for piece in pieces:
            self.line(piece.decode("utf-8", errors="replace"))

    def close(self) -> None:
        self.line(self.pending.decode("utf-8", errors="replace"))
        self.pending = b""

    def line(self, text: str) -> None:
        counter = _COUNTER.match(text)
        if counter:
            self.progress.set(int(counter.group(1)))
            text = text[counter.end():]
        if text.strip():
            _log.info("%s", text.rstrip())


def run_img2dataset(command: Sequence[str], env: Mapping[str, str], raw_log: Path, shards: int | None) -> int:
    """Run ``command``; returns its exit code."""
    forward = OutputForwarder(shards)
    with open(raw_log, "ab") as raw, subprocess.Popen(list(command), stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT, env=dict(env)) as proc:
        assert proc.stdout is not None
        try:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                raw.write(chunk)
                forward.feed(chunk)
        except BaseException:  # as subprocess.run does: no img2dataset left writing shards
            proc.kill()
            raise
        forward.close()
    return proc.returncode
