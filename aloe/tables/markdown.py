"""A Table as a GitHub-flavoured Markdown table (the README's generated demo block).

Same cells, bold and footnotes as the LaTeX fragment: teachers marked with a dagger, bold as
``**x**``, n/a cells with their footnote number. One Markdown row per table row; a block's title
stands in the first column of its first row.
"""

from __future__ import annotations

from aloe.tables.model import Table


def _cell(cell, marks: dict[str, int]) -> str:
    if cell is None:
        return "–"
    text = cell.text() + (f" [{marks[cell.note]}]" if cell.note else "")
    return f"**{text}**" if cell.bold else text


def table_markdown(table: Table, caption: str = "") -> str:
    table.check()
    marks = {note: k for k, note in enumerate(table.footnotes(), start=1)}
    has_titles = any(block.title for block in table.blocks)
    head = ([""] if has_titles else []) + [table.stub] + list(table.columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for block in table.blocks:
        for i, row in enumerate(block.rows):
            label = row.label + (" †" if row.kind == "teacher" else "")
            first = ([block.title if i == 0 and block.title else ""] if has_titles else [])
            lines.append("| " + " | ".join(first + [label] + [_cell(c, marks) for c in row.cells]) + " |")
    lines.append("")
    if caption:
        lines += [caption, ""]
    lines.append("† teacher (not interpretable). Bold: the best interpretable value where it leads by more than "
                 "one test image.")
    lines += [f"[{k}] {note}" for note, k in marks.items()]
    lines.append(f"Records of code version {', '.join(sorted(table.code_versions)) or 'unknown'}.")
    return "\n".join(lines) + "\n"
