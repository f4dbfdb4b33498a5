"""Shared by the benchmark scripts: the commit a run measured, and writing a generated section of
benchmarks/README.md between its begin/end markers (so a rerun replaces it, never edits by hand)."""

from __future__ import annotations

import subprocess
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def commit() -> str:
    """Short HEAD of this checkout, marked when tracked files differ from it."""
    here = Path(__file__).parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(text: str, begin: str, end: str, path: Path = README) -> None:
    """Replace the text between ``begin`` and ``end`` (markers included in ``text``), or append it."""
    readme = path.read_text()
    if begin in readme and end in readme:
        head, rest = readme.split(begin, 1)
        readme = head + text + rest.split(end, 1)[1]
    else:
        readme = readme.rstrip("\n") + "\n\n\n" + text + "\n"
    path.write_text(readme)
