"""The results-store options of the Monte Carlo commands and the context a command runs in.

Every Monte Carlo command (scaling, pooling, first-order, lemma9) records its draws into a
store (``verify.store``): ``--store DIR`` (default ``OUT_DIR/store``, beside the reports),
``--no-store`` to keep nothing, ``--task-draws N`` to fix the draws per stored task. Inside
``recording(...)`` the command's Monte Carlo skips the tasks the store holds and writes each
new one as soon as it is finished; the command's manifest (how to re-render its report) is
written first, so ``verify report --store DIR`` finds every report, finished or not.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping

from graphs.errors import InputError

__all__ = [
    "STORE_NAME",
    "add_store_arguments",
    "last_store",
    "recording",
    "remember",
    "reuse_note",
    "store_line",
    "store_root",
]

STORE_NAME = "store"

_LAST: list[Any] = [None]


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """--store, --no-store and --task-draws."""
    g = parser.add_argument_group("results store")
    g.add_argument(
        "--store",
        default=None,
        metavar="DIR",
        help=f"results store: finished tasks are kept there and skipped when the command is rerun, larger --draws "
        f"computes only the new draws (default OUT_DIR/{STORE_NAME})",
    )
    g.add_argument("--no-store", action="store_true", help="keep no draws: compute everything, store nothing")
    g.add_argument(
        "--task-draws",
        type=int,
        default=None,
        metavar="N",
        help="draws per stored task (default: about 2e10 FLOPs of work, 1 to 1024 draws)",
    )


def store_root(args: argparse.Namespace) -> Path | None:
    """The store folder a command uses (None with --no-store), validated, not created."""
    from verify.report.writer import check_out_dir

    if getattr(args, "no_store", False):
        if getattr(args, "store", None):
            raise InputError("--store and --no-store contradict each other; give one of them")
        return None
    text = getattr(args, "store", None) or str(Path(args.out_dir) / STORE_NAME)
    return check_out_dir(text, "--store")


@contextlib.contextmanager
def recording(
    args: argparse.Namespace, command: str, *, settings: Mapping[str, Any], arch: str | None = None
) -> Iterator[Any]:
    """Run the block with the command's store active (``verify.store.using_store``); yields
    the ``Store`` or None. ``args.store_only`` (set by ``verify report``) opens it read-only."""
    from verify.store import Store, using_store

    task_draws = getattr(args, "task_draws", None)
    if task_draws is not None and task_draws < 1:
        raise InputError(f"--task-draws: {task_draws} is too small; give an integer >= 1")
    root = store_root(args)
    if root is None:
        with using_store(None):
            yield None
        return
    read_only = bool(getattr(args, "store_only", False))
    if read_only and not root.is_dir():
        raise InputError(f"--store {str(root)!r}: no such store; give the folder a command recorded into")
    # The topmost folder this run creates: a run that ends on bad input (every net dead, say)
    # removes what it wrote there, so that nothing is left behind.
    created = root
    while not created.parent.exists() and created.parent != created:
        created = created.parent
    fresh = not root.exists()
    store = Store(root, read_only=read_only, task_draws=task_draws)
    if not read_only:
        store.write_manifest(
            command,
            arch=arch if arch is not None else getattr(args, "arch", None),
            argv=getattr(args, "argv", ()),
            command_line=getattr(args, "command_line", f"verify {command}"),
            out_dir=str(args.out_dir),
            settings=settings,
        )
    _LAST[0] = store
    try:
        with using_store(store):
            yield store
    except InputError:
        if fresh:
            store.discard_own(created)
        raise


def remember(store) -> None:
    """Name ``store`` in the message of an interrupted command (``verify sweep``'s store)."""
    _LAST[0] = store


def last_store():
    """The store the last command of this process recorded into (for the interrupt message)."""
    return _LAST[0]


def reuse_note(store) -> str:
    """For a report's wall-time line: how many draws were read from the store rather than
    computed (empty when every draw was computed in this run, or without a store)."""
    if store is None:
        return ""
    reused = max(0, store.read_draws - store.written_draws)
    if reused == 0:
        return ""
    if store.written_draws == 0:
        return f"all {reused} draws read from the results store, none computed in this run"
    return f"{reused} draws read from the results store, {store.written_draws} computed in this run"


def store_line(store) -> str:
    """One line for the terminal: where the draws are, what was computed and what reused."""
    if store is None:
        return "store: none (--no-store)"
    reused = max(0, store.read_draws - store.written_draws)
    return (
        f"store: {store.root} ({store.written_tasks} task(s) computed, {store.written_draws} draw(s); "
        f"{reused} draw(s) reused)"
    )
