"""Writing reports: atomic file writes, markdown tables, run metadata.

Reports are written to a temporary file in the target folder and renamed into place, so a
failed run never leaves a half-written report behind.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import torch

from graphs.errors import InputError

__all__ = [
    "ensure_writable_dir",
    "atomic_write_text",
    "atomic_save_figure",
    "markdown_table",
    "format_number",
    "json_safe",
    "json_text",
    "library_versions",
    "resolve_device",
]


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check that it accepts files; raise InputError otherwise.

    Called before any long computation, so an unwritable folder fails in a second, not
    after the Monte Carlo.
    """
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"report folder {str(p)!r} is not writable ({exc.strerror}); pass --out-dir DIR with a writable DIR") from None
    return p


def _publish(tmp: str, path: Path) -> None:
    # mkstemp creates files readable by the owner only; a report is for everyone to read.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically (same rule as ``atomic_write_text``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, **{"dpi": 120, "bbox_inches": "tight", **savefig_kwargs})
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def format_number(value, digits: int = 4) -> str:
    """Compact, readable number for a markdown cell."""
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
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{max(digits - 1, 1)}e}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub markdown table; cells go through ``format_number``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_number(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on, for the report header."""
    import networkx
    import numpy
    import pandas
    import scipy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "networkx": networkx.__version__,
    }


def resolve_device(name: str) -> torch.device:
    """``auto`` takes CUDA when available; asking for ``cuda`` where there is none is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available here; use --device cpu or --device auto")
        return torch.device("cuda")
    raise InputError(f"--device {name!r}: choose auto, cpu or cuda")


def json_safe(value):
    """``value`` with numpy scalars and arrays made Python, tuples made lists, and NaN or
    infinities (no number: e.g. no interval) made None, since they are not JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value) -> str:
    """Strict JSON (never NaN) for ``--json``."""
    return json.dumps(json_safe(value), allow_nan=False)
