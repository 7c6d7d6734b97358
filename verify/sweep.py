"""Sweeps: a grid of architectures x family options x sizes x seeds x commands from one TOML file.

A sweep file names the commands, the seeds and, per architecture, its sizes and family
options; a list is a grid axis, a scalar a fixed value (a tuple-valued option such as
``strides`` is written as a string, ``"1,2,2"``). A table named after a command gives that
command's own flags::

    [sweep]
    commands = ["scaling"]
    seeds = [0]
    out_dir = "reports/sweep"           # default: reports/sweep-<file name>
    # store = "..."                     # default: OUT_DIR/store

    [arch.strided-cnn]
    dims = [16, 24, 32, 48, 64]
    padding = ["zeros", "circular"]     # an axis: one report per padding
    channels = 8                        # fixed

    [scaling]
    draws = 32

``expand`` turns the file into *jobs*, one per command, architecture, option combination and
seed (and per size for ``pooling``, which takes one size), each the argument list of one
``verify`` command writing its report to ``OUT_DIR/COMMAND/SLUG/`` and its draws to the
sweep's store. A job is a function of its arguments: its Monte Carlo tasks are keyed in the
store by what changes their numbers, so running the jobs in this process, in a pool of
worker processes or on a Dask cluster gives the same store, task for task. A job that dies
(a killed worker) is run again by the executor and resumes from its finished tasks.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from graphs.errors import InputError

__all__ = [
    "EXECUTORS",
    "SWEEP_COMMANDS",
    "Job",
    "JobResult",
    "Sweep",
    "expand",
    "index_markdown",
    "load_sweep",
    "run_job",
    "run_jobs",
]

EXECUTORS = ("local", "dask")
# Commands a sweep can run, and whether one report takes several sizes.
SWEEP_COMMANDS = {"scaling": True, "first-order": True, "lemma9": True, "pooling": False}
# Flags the sweep sets itself.
_RESERVED = {"arch", "dims", "dim", "seed", "out-dir", "store", "json", "no-store"}
_SWEEP_KEYS = {"commands", "seeds", "out_dir", "store", "task_draws"}


@dataclass(frozen=True)
class Job:
    """One report of a sweep: ``argv`` of a ``verify`` command."""

    command: str
    arch: str
    options: tuple[tuple[str, str], ...]  # family flag (no dashes) -> value, in grid order
    seed: int
    dims: tuple[int, ...]
    out_dir: str
    argv: tuple[str, ...]

    @property
    def slug(self) -> str:
        return Path(self.out_dir).name


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: its jobs, output folder and store."""

    path: Path
    out_dir: Path
    store: Path
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class JobResult:
    """What one job returned: its exit status, its ``--json`` object, its error line."""

    argv: tuple[str, ...]
    status: int
    envelope: dict[str, Any] | None = field(default=None, repr=False)
    error: str = ""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "x"


def _value_text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        raise InputError(f"{where}: give a value, not true/false")
    if isinstance(value, (int, float, str)):
        return str(value)
    raise InputError(f'{where}: {value!r} is not a number or a string; write tuples as strings, e.g. "1,2,2"')


def _axis(value: Any, where: str) -> list[str]:
    """A grid axis: a list gives its values, a scalar one value."""
    if isinstance(value, list):
        if not value:
            raise InputError(f"{where}: empty list; give at least one value")
        return [_value_text(v, where) for v in value]
    return [_value_text(value, where)]


def _command_flags(command: str, table: Mapping[str, Any], path: Path) -> list[str]:
    out: list[str] = []
    for key, value in table.items():
        flag = key.replace("_", "-")
        if flag in _RESERVED:
            raise InputError(f"{path}: [{command}] {key}: the sweep sets it; give it in [sweep] or [arch.NAME]")
        if isinstance(value, bool):
            if value:
                out.append(f"--{flag}")
            continue
        if isinstance(value, list):
            raise InputError(
                f"{path}: [{command}] {key}: a list; command flags take one value (grid axes belong in [arch.NAME])"
            )
        out += [f"--{flag}", _value_text(value, f"{path}: [{command}] {key}")]
    return out


def load_sweep(path: str | os.PathLike, *, out_dir: str | None = None, store: str | None = None) -> Sweep:
    """Parse and check a sweep file; every job's arguments are parsed by ``verify``'s own
    parser before anything runs. ``out_dir``/``store`` override the file's."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
        import tomli as tomllib  # pyright: ignore[reportMissingImports]

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: no such sweep file; give a TOML file such as examples/sweep.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read it ({exc}); give a readable TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: not valid TOML ({exc}); see examples/sweep.toml") from None
    head = data.get("sweep", {})
    if not isinstance(head, dict):
        raise InputError(f"{p}: [sweep] must be a table; see examples/sweep.toml")
    unknown = set(head) - _SWEEP_KEYS
    if unknown:
        raise InputError(f"{p}: [sweep] has unknown key(s) {sorted(unknown)}; known: {sorted(_SWEEP_KEYS)}")
    root = Path(out_dir or head.get("out_dir") or f"reports/sweep-{_slug(p.stem)}")
    store_dir = Path(store or head.get("store") or root / "store")
    return Sweep(p, root, store_dir, tuple(expand(data, root, store_dir, source=p)))


def expand(data: Mapping[str, Any], out_dir: Path, store: Path, *, source: Path = Path("sweep.toml")) -> list[Job]:
    """The jobs of a parsed sweep file (module docstring), in grid order."""
    from graphs.families import FAMILIES
    from verify.cli import build_parser

    head = data.get("sweep", {})
    commands = head.get("commands", ["scaling"])
    if isinstance(commands, str):
        commands = [commands]
    bad = [c for c in commands if c not in SWEEP_COMMANDS]
    if bad or not commands:
        raise InputError(f"{source}: commands {bad or '[]'}: choose from {', '.join(SWEEP_COMMANDS)}")
    seeds = head.get("seeds", [0])
    seeds = seeds if isinstance(seeds, list) else [seeds]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InputError(f"{source}: [sweep] seeds must be a list of integers, e.g. seeds = [0, 1]")
    archs = data.get("arch", {})
    if not isinstance(archs, dict) or not archs:
        raise InputError(f"{source}: no [arch.NAME] table; give at least one, e.g. [arch.dense] with dims = [64, 256]")
    extra = set(data) - {"sweep", "arch", *SWEEP_COMMANDS}
    if extra:
        raise InputError(f"{source}: unknown table(s) {sorted(extra)}; use [sweep], [arch.NAME] and command tables")
    task_draws = head.get("task_draws")
    common = ["--store", str(store), "--json"]
    if task_draws is not None:
        common += ["--task-draws", _value_text(task_draws, f"{source}: [sweep] task_draws")]
    parser = build_parser()
    jobs: list[Job] = []
    for arch, table in archs.items():
        if arch not in FAMILIES:
            raise InputError(f"{source}: [arch.{arch}]: unknown family; choose from {', '.join(FAMILIES)}")
        if not isinstance(table, dict) or "dims" not in table:
            raise InputError(f"{source}: [arch.{arch}] needs dims, e.g. dims = [16, 32, 64]")
        dims = table["dims"] if isinstance(table["dims"], list) else [table["dims"]]
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise InputError(f"{source}: [arch.{arch}] dims must be a list of integers, e.g. dims = [16, 32, 64]")
        flags = {o.flag[2:]: o for o in FAMILIES[arch].options}
        axes: list[tuple[str, list[str]]] = []
        named: set[str] = set()  # grid axes: they name the report's folder
        for key, value in table.items():
            if key == "dims":
                continue
            name = key.replace("_", "-")
            if name not in flags:
                raise InputError(
                    f"{source}: [arch.{arch}] {key}: not an option of {arch}; choose from {', '.join(flags) or 'none'}"
                )
            axes.append((name, _axis(value, f"{source}: [arch.{arch}] {key}")))
            if isinstance(value, list):
                named.add(name)
        for command in commands:
            if command == "pooling" and arch != "avgpool-cnn":
                continue  # pooling sweeps avgpool-cnn's first window only
            own = data.get(command, {})
            if not isinstance(own, dict):
                raise InputError(f"{source}: [{command}] must be a table of flags")
            cmd_flags = _command_flags(command, own, source)
            size_sets = [tuple(dims)] if SWEEP_COMMANDS[command] else [(d,) for d in dims]
            for combo in itertools.product(*(values for _, values in axes)):
                options = tuple((name, v) for (name, _), v in zip(axes, combo))
                for seed in seeds:
                    for sizes in size_sets:
                        slug = _slug(
                            "-".join(
                                [
                                    arch,
                                    *(f"{k}-{v}" for k, v in options if k in named),
                                    f"seed{seed}",
                                    *([f"dim{sizes[0]}"] if not SWEEP_COMMANDS[command] else []),
                                ]
                            )
                        )
                        job_dir = out_dir / command / slug
                        argv = [
                            command,
                            "--arch",
                            arch,
                            "--dims",
                            ",".join(map(str, sizes)),
                            *itertools.chain.from_iterable((f"--{k}", v) for k, v in options),
                            "--seed",
                            str(seed),
                            *cmd_flags,
                            "--out-dir",
                            str(job_dir),
                            *common,
                        ]
                        try:
                            parser.parse_args(argv)
                        except InputError as exc:
                            raise InputError(f"{source}: job `verify {' '.join(argv)}`: {exc}") from None
                        jobs.append(Job(command, arch, options, int(seed), tuple(sizes), str(job_dir), tuple(argv)))
    return jobs


# ----------------------------------------------------------------------------- running

_JOB_LOCK = threading.Lock()


def run_job(argv: Sequence[str], *, exit_on_signal: bool = False) -> JobResult:
    """Run one job in this process (``verify.cli.main``), its output captured.

    Jobs of one process run one at a time (a worker with several threads serialises them:
    torch's thread pool and the captured streams are per process). ``exit_on_signal``: a
    pool worker whose job was stopped by a signal exits, after the job cleaned up.
    """
    from verify.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _JOB_LOCK, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    if exit_on_signal and status in (130, 143):
        os._exit(status)
    envelope = None
    if status == 0:
        with contextlib.suppress(ValueError):
            envelope = json.loads(out.getvalue())
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    return JobResult(tuple(argv), status, envelope, lines[-1] if lines else "")


def _init_worker(threads: int) -> None:
    import signal

    import torch

    # Ctrl-C reaches every process of the terminal; the parent stops the pool with SIGTERM,
    # which a job handles (drops its task in flight, removes its temporaries).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _pool_job(argv: Sequence[str]) -> JobResult:
    return run_job(argv, exit_on_signal=True)


def run_jobs(
    jobs: Sequence[Job],
    *,
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    retries: int = 2,
    on_result: Callable[[int, JobResult], None] | None = None,
) -> list[JobResult]:
    """Run every job; results in the order of ``jobs``.

    ``local``: in this process (``workers`` 1) or a pool of ``workers`` processes;
    ``dask``: on the ``dask.distributed`` cluster at ``scheduler`` (``tcp://HOST:PORT``), each
    job retried ``retries`` times if it raises, and run again elsewhere if its worker dies.
    A job stopped by SIGINT or SIGTERM stops the sweep (``KeyboardInterrupt``).
    """
    results: list[JobResult | None] = [None] * len(jobs)

    def done(i: int, r: JobResult) -> None:
        results[i] = r
        if on_result is not None:
            on_result(i, r)
        if r.status in (130, 143):
            raise KeyboardInterrupt(r.error)

    if executor == "local" and workers <= 1:
        for i, job in enumerate(jobs):
            done(i, run_job(job.argv))
    elif executor == "local":
        _run_pool(jobs, workers, done)
    elif executor == "dask":
        if not scheduler:
            raise InputError("--executor dask needs --scheduler tcp://HOST:PORT (the address `dask scheduler` prints)")
        _run_dask(jobs, scheduler, retries, done)
    else:
        raise InputError(f"--executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    return [r for r in results if r is not None]


def _run_pool(jobs: Sequence[Job], workers: int, done: Callable[[int, JobResult], None]) -> None:
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    _quiet_resource_tracker()
    # spawn: a fresh interpreter per worker (forking a process that holds torch's threads is unsafe)
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(min(workers, max(1, len(jobs))), initializer=_init_worker, initargs=(threads,))
    try:
        pending = {i: pool.apply_async(_pool_job, (job.argv,)) for i, job in enumerate(jobs)}
        while pending:
            for i in [i for i, res in pending.items() if res.ready()]:
                done(i, pending.pop(i).get())
            if pending:
                next(iter(pending.values())).wait(0.2)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker without its shutdown warning: a pool stopped
    by a signal leaves its queue's semaphore to it, and the warning would break the one-line
    message the sweep ends with."""
    from multiprocessing import resource_tracker

    saved = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = "ignore::UserWarning"
    try:
        resource_tracker.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = saved


def _run_dask(jobs: Sequence[Job], scheduler: str, retries: int, done: Callable[[int, JobResult], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError(
            "--executor dask needs dask.distributed: pip install 'adv-dim-verify[dask]' (or 'dask[distributed]')"
        ) from None
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"--scheduler {scheduler}: no Dask scheduler answers there ({exc}); start one with `dask scheduler`"
        ) from None
    futures = []
    try:
        futures = [
            client.submit(run_job, job.argv, key=f"verify-job-{i}-{_slug(job.slug)}", pure=False, retries=retries)
            for i, job in enumerate(jobs)
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            done(index[fut.key], fut.result())
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.close()


# ----------------------------------------------------------------------------- index page


def _report_file(result: JobResult) -> str | None:
    env = result.envelope or {}
    return env.get("report") if isinstance(env.get("report"), str) else None


def index_markdown(sweep: Sweep, results: Sequence[JobResult], *, command_line: str) -> str:
    """The index page: one row per report, with its verdict counts and a link."""
    from verify.report.markdown import table

    rows = []
    by_argv = {r.argv: r for r in results}
    for job in sweep.jobs:
        r = by_argv.get(job.argv)
        rel = os.path.relpath(job.out_dir, sweep.out_dir)
        if r is None:
            status, link = "not run", "-"
        elif r.status != 0:
            status, link = f"failed: {r.error}", "-"
        else:
            v = (r.envelope or {}).get("verdicts", {})
            status = ", ".join(f"{n} {k}" for k, n in v.items() if n) or "no claims"
            name = _report_file(r) or f"{job.command}-{job.arch}.md"
            link = f"[{name}]({Path(rel, name).as_posix()})"
        options = ", ".join(f"{k}={v}" for k, v in job.options) or "-"
        rows.append([job.command, job.arch, options, job.seed, ",".join(map(str, job.dims)), status, link])
    return "\n".join(
        [
            f"# Sweep: {sweep.path.name}",
            "",
            f"- command: `{command_line}`",
            f"- results store: `{sweep.store}` (`verify report --store {sweep.store}` re-renders every report from it)",
            f"- {len(sweep.jobs)} report(s): {', '.join(sorted({j.command for j in sweep.jobs}))}",
            "",
            table(["command", "arch", "options", "seed", "dims", "verdicts", "report"], rows).rstrip("\n"),
            "",
        ]
    )


def summary_lines(results: Iterable[JobResult]) -> list[str]:
    out = []
    for r in results:
        env = r.envelope or {}
        v = env.get("verdicts", {})
        what = ", ".join(f"{n} {k}" for k, n in v.items() if n) if r.status == 0 else f"failed ({r.error})"
        out.append(f"{' '.join(r.argv[:3])} ...: {what}")
    return out


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
