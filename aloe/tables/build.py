"""``build_table``: the entry point the Snakemake table rules call."""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

from aloe.io import write_text
from aloe.tables.collect import RecordIndex, protocol_caption
from aloe.tables.layouts import LAYOUT_FUNCTIONS
from aloe.tables.markdown import table_markdown
from aloe.tables.model import Table
from aloe.tables.paper import PaperNumbers
from aloe.tables.render import write_table
from aloe.tables.specs import table_spec


def make_table(
    name: str,
    record_paths: Iterable[str | os.PathLike],
    *,
    paper_numbers: bool = True,
    backbones: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
) -> Table:
    """The in-memory table ``name`` (a key of ``aloe.tables.TABLES``) from record files."""
    spec = table_spec(name)
    index = RecordIndex.from_files(record_paths, select=select)
    layout = LAYOUT_FUNCTIONS[spec.layout]
    table = layout(name, spec, index, PaperNumbers(name, paper_numbers), backbones=backbones, datasets=datasets)
    table.protocols = {k: set(v) for k, v in index.protocols.items()}
    table.code_versions = set(index.code_versions)
    return table


def table_caption(name: str, table: Table) -> str:
    """The table's caption and the protocols its records were made with."""
    return " ".join(filter(None, [table_spec(name).caption, protocol_caption(table.protocols)]))


def build_table(
    name: str,
    record_paths: Iterable[str | os.PathLike],
    out_csv: str | os.PathLike,
    out_tex: str | os.PathLike,
    out_md: str | os.PathLike | None = None,
    *,
    paper_numbers: bool = True,
    backbones: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
) -> Table:
    """Build table ``name`` from result-record files and write ``out_csv``, ``out_tex`` and (when
    given) the Markdown table ``out_md`` atomically.

    backbones / datasets: the rows / columns in order; None takes every one the records hold, in
    the paper's order. Every required cell must have exactly one record, else MissingRecordError
    (or ValueError for duplicates) names the cell. select: keep only records whose params hold
    these values (e.g. {"template_set": "openclip80"}). paper_numbers: add italic "paper" rows
    from ``paper_numbers.json`` where the backbone (and dataset) matches.
    """
    table = make_table(name, record_paths, paper_numbers=paper_numbers, backbones=backbones, datasets=datasets,
                       select=select)
    caption = table_caption(name, table)
    write_table(table, out_csv, out_tex, caption)
    if out_md is not None:
        write_text(out_md, table_markdown(table, caption))
    return table
