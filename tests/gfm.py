"""THE check that a report's markdown renders as intended where people read it (GitHub).

``assert_tables_render(markdown)`` parses the text with markdown-it-py (CommonMark plus the
GFM table rule, the renderer GitHub's own is compatible with) and checks every table:

- every body row has exactly the header's number of cells, counted by the renderer's own
  cell splitter (GFM pads a short row with empty cells and silently drops the cells of a long
  one, so the rendered HTML alone cannot show the loss: a cell holding an unescaped ``||``
  used to push a row's verdict out of its table);
- every line that starts with ``|`` belongs to a table (a table whose delimiter row does not
  match its header renders as a paragraph of pipes);
- the HTML has one ``<tr>`` per source row, each with the header's number of cells.
"""

from __future__ import annotations

import importlib

from markdown_it import MarkdownIt

__all__ = ["assert_tables_render", "table_problems"]

_split = importlib.import_module("markdown_it.rules_block.table").escapedSplit
_MD = MarkdownIt("commonmark").enable("table")


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return _split(line)


def table_problems(markdown: str) -> list[str]:
    """What is wrong with the tables of ``markdown`` (empty when nothing is)."""
    lines = markdown.split("\n")
    tokens = _MD.parse(markdown)
    problems: list[str] = []
    in_tables: set[int] = set()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type != "table_open":
            i += 1
            continue
        assert tok.map is not None
        start, end = tok.map
        in_tables.update(range(start, end))
        rows = [lines[n] for n in range(start, end)]
        width = len(_cells(rows[0]))
        for n, row in enumerate(rows[2:], start=start + 3):
            got = len(_cells(row))
            if got != width:
                problems.append(f"line {n}: {got} cells for {width} columns: {row[:120]}")
        # the rendered rows: one per source row but the delimiter, each as wide as the header
        depth, trs, cells, counts = 0, 0, 0, []
        j = i
        while True:
            t = tokens[j]
            if t.type == "tr_open":
                trs, cells = trs + 1, 0
            elif t.type in ("th_open", "td_open"):
                cells += 1
            elif t.type == "tr_close":
                counts.append(cells)
            depth += t.nesting if t.type.startswith("table") else 0
            j += 1
            if t.type == "table_close":
                break
        if trs != len(rows) - 1:
            problems.append(f"line {start + 1}: {trs} rendered rows for {len(rows) - 1} source rows")
        if any(c != width for c in counts):
            problems.append(f"line {start + 1}: rendered rows of {sorted(set(counts))} cells for {width} columns")
        i = j
    for n, line in enumerate(lines):
        if line.lstrip().startswith("|") and n not in in_tables:
            problems.append(f"line {n + 1}: a table row outside any table (broken delimiter row?): {line[:120]}")
    return problems


def assert_tables_render(markdown: str) -> None:
    """Fail with every table problem of ``markdown`` at once."""
    problems = table_problems(markdown)
    assert not problems, "tables that do not render:\n" + "\n".join(problems)
