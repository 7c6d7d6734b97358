"""The results store: every Monte Carlo measurement, one Parquet file per finished task.

A *series* is everything that fixes the numbers of a draw except its id: the kind of
measurement (``engine``, ``first-order``, ``lemma9-weights``), the architecture
(``Spec.fingerprint()``, which covers the family, the size and every option), the run's seed
and the settings that change a value (batch, inputs, eps, dtype, backend, device, a revision
number the measuring code bumps when its numbers change). A *task* is a run of consecutive
draw ids of one series; draw i of a series is a function of (series, i) alone, so a task
gives the same numbers whenever, wherever and in whichever order it runs.

Layout (hive-style folder names, so that ``pandas.read_parquet`` and DuckDB see ``kind`` and
``series`` as columns)::

    ROOT/kind=engine/series=<16 hex>/_series.json             what the series is (JSON)
    ROOT/kind=engine/series=<16 hex>/000000032-000000064.parquet  draws 32..63, long format
    ROOT/_reports/<command>-<arch>-<12 hex>.json               how to re-render a report

Writers never lock. A task is written to a hidden temporary name in its folder and renamed
into place when complete (a rename within a folder is atomic), so a reader sees a whole task
or none; two writers finishing the same task rename identical content over each other.
Tasks of different lengths may overlap (``--draws 100`` then ``--draws 200`` leaves
0-100 and 100-200 beside a fresh run's aligned tasks); a reader takes every draw from one file
(the one reaching furthest), so no draw is counted twice. A writer killed with SIGKILL leaves
its temporary file behind: readers ignore it (its name starts with a dot), and the next writer
on the same host removes temporaries whose process is gone.

Files are grouped per kind because each kind has its own columns:
``pandas.read_parquet(ROOT / "kind=engine")`` gives one table, and ``verify query`` joins all
of them by name.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphs.errors import InputError

__all__ = [
    "FORMAT",
    "MANIFESTS",
    "MissingDraws",
    "ReportManifest",
    "Series",
    "Store",
    "TaskKey",
    "active_store",
    "deferred_signals",
    "task_ranges",
    "using_store",
]

FORMAT = 1
MANIFESTS = "_reports"
_SERIES_FILE = "_series.json"
_TASK_NAME = re.compile(r"^(\d{9})-(\d{9})\.parquet$")
# Record columns the store writes first, in this order; a kind's key columns follow them.
_LEADING = ("arch", "dim", "d", "draw", "input", "quantity")


class MissingDraws(InputError):
    """A read-only store lacks draws a report needs."""


@dataclass(frozen=True)
class TaskKey:
    """What the numbers of a Monte Carlo depend on besides the architecture and the draw id.

    ``kind`` names the measurement; ``params`` holds every setting that changes a value
    (JSON data: numbers, strings, lists, None). Two runs whose keys and specs are equal
    share their stored draws.
    """

    kind: str
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a short critical section runs (writing a task or a
    report and renaming it), so a signal never leaves a temporary file or a half-renamed set
    of files; the first signal received is handled when the section ends.

    Python runs signal handlers in the main thread only, so a section in another thread is
    never interrupted by one; in the main thread the handlers are swapped for a recorder
    (blocking the signal with ``pthread_sigmask`` would not do: another thread of the process,
    torch's for one, would take it and the main thread would still raise).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, Any]] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append((signum, frame))

    saved: dict[int, Any] = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signum, frame = pending[0]
            handler = saved[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler != signal.SIG_IGN:
                signal.raise_signal(signum)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # torch dtypes and devices


def _digest(value: Any) -> str:
    text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def _atomic_write(folder: Path, name: str, write) -> Path:
    """``write(path)`` into a hidden temporary file of ``folder``, then rename it to ``name``.
    Signals wait until the file is renamed or removed."""
    target = folder / name
    with deferred_signals():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.{_host_tag()}.{os.getpid()}.", suffix=".tmp")
        try:
            os.close(fd)
            write(tmp)
            # mkstemp makes the file private; a store is for everyone who can read its folder
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale(folder: Path) -> None:
    """Remove temporaries that a killed writer on this host left in ``folder``."""
    host = _host_tag()
    for p in folder.glob(".*.tmp"):
        parts = p.name.split(".")
        # .NAME.parquet.HOST.PID.RANDOM.tmp
        if len(parts) >= 5 and parts[-4] == host and parts[-3].isdigit() and not _pid_alive(int(parts[-3])):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def task_ranges(draw_ids: Sequence[int], covered: Sequence[tuple[int, int]], task_draws: int) -> list[tuple[int, int]]:
    """The tasks to compute for ``draw_ids``: maximal runs of consecutive ids not in any
    ``covered`` range, cut at multiples of ``task_draws`` (so that runs of different lengths
    cut the same tasks wherever they overlap)."""
    merged: list[list[int]] = []
    for lo, hi in sorted(covered):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    missing = []
    k = 0
    for i in sorted({int(i) for i in draw_ids}):
        while k < len(merged) and merged[k][1] <= i:
            k += 1
        if not (k < len(merged) and merged[k][0] <= i):
            missing.append(i)
    out: list[tuple[int, int]] = []
    for i in missing:
        if out and out[-1][1] == i and i % task_draws != 0:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


class Series:
    """The stored draws of one series (module docstring)."""

    def __init__(self, store: Store, kind: str, digest: str, description: dict[str, Any]) -> None:
        self.store = store
        self.kind = kind
        self.digest = digest
        self.description = description
        self.path = store.root / f"kind={kind}" / f"series={digest}"

    def tasks(self) -> list[tuple[int, int, Path]]:
        """Finished tasks as ``(lo, hi, path)``, draws ``lo..hi-1``."""
        if not self.path.is_dir():
            return []
        out = []
        for p in self.path.iterdir():
            m = _TASK_NAME.match(p.name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), p))
        return sorted(out)

    def missing(self, draw_ids: Sequence[int], task_draws: int) -> list[tuple[int, int]]:
        return task_ranges(draw_ids, [(lo, hi) for lo, hi, _ in self.tasks()], task_draws)

    def _prepare(self) -> None:
        if self.store.read_only:
            raise RuntimeError("a read-only store cannot be written")
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / _SERIES_FILE).exists():
            text = json.dumps(self.description, sort_keys=True, indent=1, allow_nan=False) + "\n"
            made = _atomic_write(self.path, _SERIES_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            self.store.written_files.append(made)
        _sweep_stale(self.path)

    def write(self, lo: int, hi: int, columns: Mapping[str, np.ndarray]) -> Path:
        """Write draws ``lo..hi-1`` (long-format columns, every draw of the range present)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._prepare()
        draws = np.asarray(columns["draw"])
        if draws.size and (draws.min() < lo or draws.max() >= hi):
            raise ValueError(f"task {lo}-{hi} holds draws outside its range")
        names = [c for c in _LEADING if c in columns] + [c for c in columns if c not in _LEADING]
        table = pa.table({c: pa.array(np.asarray(columns[c])) for c in names})
        meta = {"verify.series": self.digest, "verify.kind": self.kind, "verify.draws": f"{lo}-{hi}"}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        path = _atomic_write(self.path, f"{lo:09d}-{hi:09d}.parquet", lambda tmp: pq.write_table(table, tmp))
        self.store.written_tasks += 1
        self.store.written_draws += hi - lo
        self.store.written_files.append(path)
        return path

    def read(self, draw_ids: Sequence[int], *, drop: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Columns of the stored records of ``draw_ids``, rows in the order of ``draw_ids``
        (each draw from one file: among the files holding it, the one reaching furthest)."""
        import pyarrow.parquet as pq

        wanted = sorted({int(i) for i in draw_ids})
        self.store.read_draws += len(wanted)
        tasks = self.tasks()
        chosen: list[tuple[Path, int, int]] = []  # file, first and last+1 id taken from it
        k = 0
        while k < len(wanted):
            i = wanted[k]
            holders = [(hi, -lo, p) for lo, hi, p in tasks if lo <= i < hi]
            if not holders:
                raise MissingDraws(f"the store {self.store.root} lacks draw {i} of {self.describe()}")
            hi, _, p = max(holders)
            chosen.append((p, i, hi))
            while k < len(wanted) and wanted[k] < hi:
                k += 1
        parts: dict[str, list[np.ndarray]] = {}
        for p, first, end in chosen:
            table = pq.read_table(p)
            draw = table.column("draw").to_numpy()
            rows = np.flatnonzero((draw >= first) & (draw < end) & np.isin(draw, wanted))
            for name in table.column_names:
                if name in drop:
                    continue
                col = table.column(name).to_numpy(zero_copy_only=False)
                parts.setdefault(name, []).append(col[rows])
        cols = {k: np.concatenate(v) for k, v in parts.items()}
        if not cols:
            return cols
        position = {d: n for n, d in enumerate(dict.fromkeys(int(i) for i in draw_ids))}
        order = np.argsort(np.array([position[int(d)] for d in cols["draw"]]), kind="stable")
        return {k: v[order] for k, v in cols.items()}

    def describe(self) -> str:
        d = self.description
        return f"{d.get('kind')} {d.get('arch')} dim={d.get('dim')} (d={d.get('d')}, seed {d.get('seed')})"


@dataclass(frozen=True)
class ReportManifest:
    """How a report was made: enough to re-render it from the store."""

    path: Path
    command: str
    arch: str | None
    argv: tuple[str, ...]
    command_line: str
    out_dir: str
    settings: dict[str, Any]


class Store:
    """A results store rooted at ``root`` (module docstring).

    ``read_only`` stores never compute: a missing draw is a ``MissingDraws`` error.
    ``task_draws`` fixes the draws per task (default: from the work of one draw).
    """

    def __init__(self, root: str | os.PathLike, *, read_only: bool = False, task_draws: int | None = None) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.task_draws = task_draws
        # what this process did with the store (for the terminal line)
        self.written_tasks = 0
        self.written_draws = 0
        self.read_draws = 0
        self.written_files: list[Path] = []

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r}, read_only={self.read_only})"

    def series(self, spec, key: TaskKey) -> Series:
        fingerprint = spec.fingerprint()
        ident = {"format": FORMAT, "kind": key.kind, "spec": fingerprint, "seed": int(key.seed), "params": key.params}
        digest = _digest(ident)[:16]
        description = {
            "format": FORMAT,
            "kind": key.kind,
            "arch": spec.family,
            "dim": spec.dim,
            "d": spec.d,
            "options": _canonical(spec.options),
            "fingerprint": fingerprint,
            "seed": int(key.seed),
            "params": _canonical(key.params),
            "spec": _canonical(spec.to_dict()),
        }
        return Series(self, key.kind, digest, description)

    def task_files(self) -> list[Path]:
        """Every finished task file, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("kind=*/series=*/*.parquet") if _TASK_NAME.match(p.name))

    def series_descriptions(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.root.glob(f"kind=*/series=*/{_SERIES_FILE}")):
            d = json.loads(p.read_text(encoding="utf-8"))
            d["series"] = p.parent.name.split("=", 1)[1]
            out.append(d)
        return out

    # ----------------------------------------------------------------- report manifests

    def write_manifest(
        self,
        command: str,
        *,
        arch: str | None,
        argv: Sequence[str],
        command_line: str,
        out_dir: str,
        settings: Mapping[str, Any],
    ) -> Path:
        """Record how to re-render a report (one file per command and settings: a later run
        with the same settings replaces it)."""
        folder = self.root / MANIFESTS
        folder.mkdir(parents=True, exist_ok=True)
        ident = _digest({"command": command, "settings": settings})[:12]
        body = {
            "format": FORMAT,
            "command": command,
            "arch": arch,
            "argv": list(argv),
            "command_line": command_line,
            "out_dir": str(out_dir),
            "settings": _canonical(settings),
        }
        text = json.dumps(body, sort_keys=True, indent=1, allow_nan=False) + "\n"
        name = f"{command}-{arch or 'all'}-{ident}.json"
        path = _atomic_write(folder, name, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        self.written_files.append(path)
        return path

    def discard_own(self, upto: Path) -> None:
        """Remove every file this object wrote, then the folders they leave empty, up to and
        including ``upto`` (a run that ends on bad input leaves nothing behind; folders that
        another writer filled meanwhile are kept)."""
        folders = set()
        for p in self.written_files:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            folders.update(q for q in p.parents if q == upto or upto in q.parents)
        for folder in sorted(folders, key=lambda q: len(q.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.written_files.clear()

    def manifests(self) -> list[ReportManifest]:
        out = []
        for p in sorted((self.root / MANIFESTS).glob("*.json")):
            d = json.loads(p.read_text(encoding="utf-8"))
            out.append(
                ReportManifest(
                    p, d["command"], d.get("arch"), tuple(d["argv"]), d["command_line"], d["out_dir"], d["settings"]
                )
            )
        return out


_ACTIVE: contextvars.ContextVar[Store | None] = contextvars.ContextVar("verify_store", default=None)


def active_store() -> Store | None:
    """The store the Monte Carlo loop records into (set by ``using_store``), or None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using_store(store: Store | None) -> Iterator[Store | None]:
    """Make ``store`` the one every ``verify.montecarlo.monte_carlo`` call with a task key
    records into, for the duration of the block (None: store nothing)."""
    token = _ACTIVE.set(store)
    try:
        yield store
    finally:
        _ACTIVE.reset(token)
