"""The tables only read records and draw: no module of aloe/tables imports the model, data or
evaluation code, or torch, directly or through the aloe modules it imports (parsed with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

ALOE = Path(__file__).resolve().parents[2] / "aloe"
FORBIDDEN = ("aloe.eval", "aloe.models", "aloe.data", "aloe.device", "aloe.bcos", "torch")


def imported(path: Path, package: str | None = None) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names anywhere in the file (functions too);
    for ``from X import y``, both X and X.y (y may be a submodule). ``package``: the file's package
    (for relative imports), by default from its place under aloe/."""
    if package is None:
        package = ".".join(path.relative_to(ALOE.parent).with_suffix("").parts)
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str) -> Path | None:
    """The file of an aloe module, None for a name that is no aloe module (e.g. a function)."""
    if not name.startswith("aloe"):
        return None
    parts = name.split(".")[1:]
    for candidate in (ALOE.joinpath(*parts).with_suffix(".py"), ALOE.joinpath(*parts, "__init__.py")):
        if parts and candidate.is_file():
            return candidate
    return ALOE / "__init__.py" if not parts else None


def bad(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_tables_import_nothing_of_eval_models_data_device_or_torch():
    problems, seen = [], set()
    todo = [(p, str(p.relative_to(ALOE.parent))) for p in sorted((ALOE / "tables").glob("*.py"))]
    assert len(todo) >= 10 and any(p.name == "explanations.py" for p, _ in todo)
    while todo:
        path, chain = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in sorted(imported(path)):
            if bad(name):
                problems.append(f"{chain} imports {name}")
            elif (dep := module_file(name)) is not None:
                todo.append((dep, f"{chain} -> {name}"))
    assert problems == []
    # the walk followed the tables into the shared modules they use
    assert {ALOE / "records.py", ALOE / "io.py", ALOE / "registry.py"} <= seen


def test_the_check_sees_imports_everywhere(tmp_path):
    src = tmp_path / "probe.py"
    src.write_text("from aloe.eval.stages import run_knn\n\ndef f():\n    import torch\n    from .names import label\n")
    names = imported(src, package="aloe.tables")
    assert {"aloe.eval.stages", "torch", "aloe.tables.names", "aloe.tables.names.label"} <= names
    assert bad("aloe.eval.stages") and bad("torch") and bad("torch.nn") and not bad("aloe.tables.names")
    assert not bad("torchvision_like") and not bad("aloe.evaluation")
