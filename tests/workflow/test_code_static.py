"""The code without running it: no import cycle in the aloe package, and no file cited that the
repository does not have."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "aloe"
# a file name ending in .md (written so that this file names none itself)
MD_NAME = re.compile(r"[\w./-]*\w\." + "md" + r"\b")
WEB_HOST = re.compile(r"^[\w-]+(\.[\w-]+)+$")  # github.com, slurm.schedmd.com


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """aloe module -> the aloe modules it imports anywhere in its file (imports inside functions
    too: a lazy import hides a cycle from the import system, not from the design)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                submodules = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                deps.update(submodules)
                if len(submodules) < len(node.names):  # names defined in (or re-exported by) node.module
                    deps.add(node.module)
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import path per module that leads back to it."""
    found = []
    for start in sorted(graph):
        path, seen = [start], {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                path.pop()
            elif nxt == start:
                found.append([*path, start])
                break
            elif nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return found


def test_the_import_graph_reader_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    assert "aloe.models.student_files" in graph["aloe.models.student"]  # save_pretrained's save_student
    assert "aloe.models.student" in graph["aloe.models"]


def test_no_module_of_aloe_imports_itself_back():
    assert cycles(import_graph()) == []


def code_files() -> list[Path]:
    files = [ROOT / "Snakefile", *(ROOT / "workflow").rglob("*.smk")]
    for folder in ("aloe", "benchmarks", "tests", "workflow", "slurm"):
        files += (ROOT / folder).rglob("*.py")
    return sorted(set(files))


def test_code_cites_only_markdown_files_the_repository_has():
    """Docstrings and comments may point to the repository's own .md files (from the repository
    root or from the file's folder); other sources are cited by paper, project or URL."""
    missing = []
    for path in code_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in MD_NAME.findall(line):
                if WEB_HOST.match(name.split("/")[0]) and "/" in name:
                    continue  # a web address
                if name.startswith("results/"):
                    continue  # a file the pipeline writes (results/ is never committed)
                if not ((ROOT / name).is_file() or (path.parent / name).is_file()):
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert missing == []
    assert len(code_files()) > 100  # it did look
