"""Reports: markdown and figures rendered from result objects, written atomically.

A renderer takes a check's result object and a ``RunInfo`` and returns a ``Rendered``: the
markdown text, its figures, the ``--json`` object and a short terminal summary. Writing is
``write_rendered``: figures and markdown are rendered to memory first, then written to
temporary files and renamed together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify.report.writer import (
    check_out_dir,
    envelope,
    figure_png,
    json_safe,
    json_text,
    library_versions,
    run_header,
    write_files,
)

__all__ = [
    "Rendered",
    "check_out_dir",
    "envelope",
    "figure_png",
    "json_safe",
    "json_text",
    "library_versions",
    "run_header",
    "write_files",
    "write_rendered",
]


@dataclass
class Rendered:
    """A rendered report: ``stem`` names the files (``stem.md``, figures by their own names)."""

    stem: str
    markdown: str
    figures: dict[str, Any] = field(default_factory=dict)  # file name -> matplotlib Figure
    json: dict[str, Any] = field(default_factory=dict)  # the whole --json object (envelope included)
    summary: str = ""  # what a terminal shows


def write_rendered(out_dir: str | Path, rendered: Rendered) -> list[Path]:
    """Write the markdown and every figure of ``rendered`` into ``out_dir`` together."""
    files: dict[str, str | bytes] = {name: figure_png(fig) for name, fig in rendered.figures.items()}
    files[f"{rendered.stem}.md"] = rendered.markdown
    return write_files(out_dir, files)
