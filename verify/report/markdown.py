"""Markdown building blocks: numbers, signed numbers, intervals, GitHub tables.

Table cells are escaped so that a cell holding ``||d_x L||_2`` does not split the row on
GitHub (GFM ends a cell at every unescaped ``|``, even inside backticks).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from verify.results import Interval, Verdict

__all__ = ["escape_cell", "format_number", "interval_text", "signed", "table", "verdict_text"]


def format_number(value, digits: int = 4) -> str:
    """Compact, readable number: ``-`` for None, ``nan``, integers as such, else ``digits``
    significant digits (scientific notation outside [1e-3, 1e5))."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{max(digits - 1, 1)}e}"


def signed(value: float | None, decimals: int = 3) -> str:
    """A number with an explicit sign (``+0.500``), for slopes and relative differences."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:+.{decimals}f}"


def interval_text(interval: Interval, decimals: int = 3, *, sign: bool = True, digits: int | None = None) -> str:
    """``[low, high]`` with ``decimals`` decimals (signed), or ``digits`` significant digits."""
    if not interval.finite:
        return "no interval"
    if digits is not None:
        return f"[{format_number(interval.low, digits)}, {format_number(interval.high, digits)}]"
    fmt = f"{{:{'+' if sign else ''}.{decimals}f}}"
    return f"[{fmt.format(interval.low)}, {fmt.format(interval.high)}]"


def verdict_text(verdict: Verdict, *, bold: bool = True) -> str:
    return f"**{verdict.value}**" if bold else verdict.value


def escape_cell(text: str) -> str:
    """Escape ``|`` (cell separator) and newlines for a GFM table cell."""
    return text.replace("\\|", "|").replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub markdown table (trailing newline); cells through ``format_number`` and escaped."""
    lines = [
        "| " + " | ".join(escape_cell(str(h)) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        # Strings are already formatted ("+0.500", "[+0.1, +0.2]"): never re-parse them as numbers.
        cells = [escape_cell(c if isinstance(c, str) else format_number(c)) for c in row]
        if len(cells) != len(headers):
            raise ValueError(f"a row has {len(cells)} cells for {len(headers)} columns")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
