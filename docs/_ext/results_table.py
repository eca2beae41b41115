"""Render a measured table from ``bench/results/*.json`` as a docutils table.

Usage in a MyST page::

    ```{results-table} allreduce-2ranks.json
    ```

The file holds the rows as numbers and says how each column is written
(``columns[i].cell``, a :meth:`str.format` template over a row). Besides the
usual format specs, ``bytes``, ``time`` and ``bandwidth`` format a number
with :mod:`collectives.units`, so the page writes sizes as the library does.
Under the table go the file's description and where the numbers came from
(commit, date, machine, MPI, the command that re-measures them).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
REQUIRED = ("title", "commit", "date", "machine", "columns", "rows")


class _CellFormatter(string.Formatter):
    def format_field(self, value, format_spec):
        from collectives import units

        if format_spec == "bytes":
            return units.format_bytes(value)
        if format_spec == "time":
            return units.format_time(value)
        if format_spec == "bandwidth":
            return units.format_bandwidth(value)
        return super().format_field(value, format_spec)


def load_results(name: str) -> dict:
    """Read one results file and check that it says where its numbers came from."""
    path = RESULTS_DIR / name
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    return data


def _paragraph(text: str) -> nodes.paragraph:
    return nodes.paragraph(text, text)


def build_table(data: dict) -> nodes.table:
    """The rows of ``data`` as a docutils table, one column per ``columns`` entry."""
    formatter = _CellFormatter()
    columns = data["columns"]
    table = nodes.table(classes=["results-table"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    for _ in columns:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    header = nodes.row()
    for column in columns:
        header += nodes.entry("", _paragraph(column["label"]))
    head += header
    body = nodes.tbody()
    group += body
    filled = [False] * len(columns)
    for row in data["rows"]:
        line = nodes.row()
        for i, column in enumerate(columns):
            try:
                text = formatter.format(column["cell"], **row)
                filled[i] = True
            except KeyError:
                text = ""  # a cell this row has no value for stays empty
            classes = ["text-right"] if column.get("align") == "right" else []
            line += nodes.entry("", _paragraph(text), classes=classes)
        body += line
    for column, used in zip(columns, filled):
        if not used:   # a misspelt key would otherwise give a silently empty column
            raise ValueError(f"column {column['label']!r}: no row has the keys of {column['cell']!r}")
    return table


class ResultsTable(SphinxDirective):
    """``results-table FILE``: a table of ``bench/results/FILE`` with its provenance."""

    required_arguments = 1
    option_spec = {"no-title": directives.flag}

    def run(self):
        name = self.arguments[0]
        self.env.note_dependency(str(RESULTS_DIR / name))
        try:
            data = load_results(name)
        except (OSError, ValueError) as exc:
            raise self.error(f"results-table: {exc}") from None
        out = []
        try:
            table = build_table(data)
        except ValueError as exc:
            raise self.error(f"results-table {name}: {exc}") from None
        if "no-title" not in self.options:
            table.insert(0, nodes.title(data["title"], data["title"]))
        out.append(table)
        if data.get("about"):
            out.append(_paragraph(data["about"]))
        facts = [f"commit {data['commit']}" + (f" ({data['commit_note']})" if data.get("commit_note") else ""),
                 f"date {data['date']}", f"machine: {data['machine']}"]
        for key in ("mpi", "software"):
            if data.get(key):
                facts.append(f"{'MPI' if key == 'mpi' else 'software'}: {data[key]}")
        out.append(_paragraph("; ".join(facts) + f". Data: bench/results/{name}."))
        if data.get("provenance"):
            out.append(_paragraph(data["provenance"]))
        if data.get("command"):
            out.append(nodes.literal_block(data["command"], data["command"], language="console"))
        elif data.get("method"):
            out.append(_paragraph(f"Method: {data['method']}."))
        return out


def setup(app):
    app.add_directive("results-table", ResultsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
