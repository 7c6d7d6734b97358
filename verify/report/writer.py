"""Writing results: the output folder, atomic multi-file reports, the run header, JSON.

A report is a markdown file and its figures. They are written to temporary files in the
target folder first and renamed into place only when every one of them is complete, so a
reader never sees a half-written file, and never a new figure beside an old report for
longer than the renames take. Nothing is created before there is something to write: a run
that fails on bad input leaves no empty folder behind.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from graphs.errors import InputError
from verify.results import Claim, RunInfo, claims_summary
from verify.version import __version__

__all__ = [
    "check_out_dir",
    "envelope",
    "figure_png",
    "json_safe",
    "json_text",
    "library_versions",
    "run_header",
    "write_files",
]


def check_out_dir(path: str | os.PathLike, flag: str = "--out-dir") -> Path:
    """Validate an output folder without creating it: it exists as a folder, or its nearest
    existing ancestor is a writable folder. One-line ``InputError`` otherwise."""
    text = os.fspath(path)
    if not str(text).strip():
        raise InputError(f"{flag}: empty path; give a folder, e.g. {flag} reports")
    p = Path(text)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"{flag} {text!r}: {str(probe)!r} is a file, not a folder; give a folder path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {text!r}: {str(probe)!r} is not writable; pass {flag} DIR with a writable DIR")
    return p


def _publish_mode(tmp: str) -> None:
    # mkstemp creates files readable by the owner only; a report is for everyone to read.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def figure_png(fig, **savefig_kwargs) -> bytes:
    """A matplotlib figure as PNG bytes (figures are rendered before anything is written)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **{"dpi": 120, "bbox_inches": "tight", **savefig_kwargs})
    return buf.getvalue()


def write_files(out_dir: str | os.PathLike, files: Mapping[str, str | bytes]) -> list[Path]:
    """Write ``files`` (name -> text or bytes) into ``out_dir`` together: all to temporary
    files first, then all renamed; on any error every temporary file is removed, and SIGINT or
    SIGTERM is held back until the files are all renamed."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create {str(folder)!r} ({exc.strerror}); pass --out-dir DIR with a writable DIR"
        ) from None
    from verify.store import deferred_signals

    temps: list[tuple[str, Path]] = []
    # SIGINT and SIGTERM wait until every file is renamed (or every temporary removed): a
    # signal between two renames would leave a new figure beside an old report.
    with deferred_signals():
        _write_all(folder, files, temps)
    return [target for _, target in temps]


def _write_all(folder: Path, files: Mapping[str, str | bytes], temps: list[tuple[str, Path]]) -> None:
    try:
        for name, content in files.items():
            target = folder / name
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
            temps.append((tmp, target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            _publish_mode(tmp)
        for tmp, target in temps:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import networkx
    import numpy
    import pandas
    import scipy
    import torch

    return {
        "verify": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "networkx": networkx.__version__,
    }


def run_header(run: RunInfo) -> list[str]:
    """The provenance block every report starts its settings with (one format for all)."""
    versions = ", ".join(f"{k} {v}" for k, v in run.versions.items())
    wall = f"{run.wall_seconds:.1f} s" if math.isfinite(run.wall_seconds) else "n/a"
    if run.wall_note:
        wall += f" ({run.wall_note})"
    seed = "n/a" if run.seed is None else str(run.seed)
    return [
        f"- command: `{run.command}`",
        f"- seed: {seed}; device: {run.device}, {run.threads} CPU thread(s), {run.dtype}",
        f"- libraries: {versions}",
        f"- wall time: {wall}",
    ]


def envelope(command: str, run: RunInfo, claims: Sequence[Claim], payload: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--json`` object of every command: the common envelope, then the command's own keys.

    ``command``, ``version``, ``run`` (seed, device, torch version, wall seconds and every
    setting that changes the numbers), ``claims`` (one object per ``Claim``) and
    ``verdicts`` (counts per verdict) come first; the command's keys follow unchanged, so
    scripts that read them keep working.
    """
    out: dict[str, Any] = {
        "command": command,
        "version": __version__,
        "run": run.to_dict(),
        "claims": [c.to_dict() for c in claims],
        "verdicts": claims_summary(claims),
    }
    for key, value in payload.items():
        if key in out:
            raise ValueError(f"payload key {key!r} collides with the envelope")
        out[key] = value
    return out


def json_safe(value):
    """``value`` with numpy scalars and arrays made Python, tuples made lists, enums made
    their values, and NaN or infinities made None (they are not JSON)."""
    from enum import Enum

    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Enum):
        return json_safe(value.value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value) -> str:
    """Strict JSON (never NaN) for ``--json``."""
    return json.dumps(json_safe(value), allow_nan=False)
