"""The one Monte Carlo loop: weight draws of one net, in blocks, into long-format records.

Every Monte Carlo of the toolkit (the scaling engine, pooling, the first-order checks,
Lemma 9's weight draws) is a function of a draw id: draw i of a run seeded by ``seed`` uses
the streams ``(seed, i)`` of ``graphs.rng`` and nothing else, so a block of draws can be
computed alone, in any order, on any worker, and gives the same numbers. This module runs
such a function over the draws, under the runtime's thread policy, with one progress bar,
and assembles one record schema:

    arch, dim, d, draw, input, quantity, value

``input`` is the index of the sample within its draw (or of the weight, for Lemma 9); checks
that qualify a quantity (the first-order checks' norm, attack and eps) add key columns of
their own after ``quantity``.

The store hook. A caller that passes ``key`` (a ``verify.store.TaskKey``: what its numbers
depend on besides the spec and the draw id) lets the loop record into the active results store
(``verify.store.using_store``): the draws are cut into tasks of ``task_draws`` consecutive ids
(aligned to multiples of it), tasks the store already holds are skipped, each new task is
written to the store as soon as it is finished, and the records returned are read back from
the store, so a run that was interrupted and resumed returns the same records as one that was
not. Without a key or an active store nothing changes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from graphs.spec import Spec
from verify.runtime import Runtime

if TYPE_CHECKING:
    from verify.store import TaskKey

__all__ = ["RECORD_COLUMNS", "TASK_FLOPS", "BlockFn", "block_records", "monte_carlo", "show_progress", "task_draws"]

RECORD_COLUMNS = ("arch", "dim", "d", "draw", "input", "quantity", "value")

# draw ids of one block -> long-format columns of that block: at least draw, input,
# quantity and value, all of one length.
BlockFn = Callable[[Sequence[int]], Mapping[str, np.ndarray]]

# A stored task holds about this much work (a few seconds on two CPU cores): small enough that
# an interrupted run loses little, large enough that a task's file is not mostly overhead.
TASK_FLOPS = 2e10
_MAX_TASK_DRAWS = 1024


def task_draws(block_size: int = 1, work_flops: float | None = None) -> int:
    """Draws per stored task: a multiple of ``block_size`` worth about ``TASK_FLOPS`` when a
    draw's forward pass costs ``work_flops`` (a power of two, at most 64 blocks)."""
    block_size = max(1, int(block_size))
    blocks = 64 if not work_flops or work_flops <= 0 else int(TASK_FLOPS // work_flops)
    blocks = 1 << max(0, min(6, blocks.bit_length() - 1)) if blocks >= 1 else 1
    return max(block_size, min(block_size * blocks, _MAX_TASK_DRAWS))


def show_progress(quiet: bool = False) -> bool:
    """Progress bars go to a terminal only: never into a pipe, a log file or ``--json`` output."""
    return not quiet and sys.stderr.isatty()


def block_records(draw_ids: Sequence[int], quantities: Sequence[str], values: np.ndarray) -> dict[str, np.ndarray]:
    """Long-format columns from ``values[draw, quantity, input]`` (one block)."""
    n_d, n_q, n_i = values.shape
    if n_d != len(draw_ids) or n_q != len(quantities):
        raise ValueError(
            f"values of shape {values.shape} do not match {len(draw_ids)} draws x {len(quantities)} quantities"
        )
    return {
        "draw": np.repeat(np.asarray(draw_ids, dtype=np.int64), n_q * n_i),
        "input": np.tile(np.arange(n_i, dtype=np.int64), n_d * n_q),
        "quantity": np.tile(np.repeat(np.asarray(quantities, dtype=object), n_i), n_d),
        "value": np.asarray(values, dtype=np.float64).reshape(-1),
    }


def monte_carlo(
    spec: Spec,
    draws: Sequence[int],
    block_fn: BlockFn,
    *,
    rt: Runtime | None = None,
    block_size: int = 1,
    work_flops: float | None = None,
    progress: bool = False,
    desc: str | None = None,
    key: TaskKey | None = None,
) -> pd.DataFrame:
    """Run ``block_fn`` over ``draws`` in blocks of ``block_size``; long-format records.

    ``work_flops`` (the forward cost of one block) sets the thread count by the runtime's
    policy; without a runtime, torch's current setting is kept. ``key``: record into the
    active results store (module docstring).
    """
    from tqdm import tqdm

    draw_ids = [int(i) for i in draws]
    block_size = max(1, int(block_size))
    store = None
    if key is not None:
        from verify.store import active_store

        store = active_store()
    series = store.series(spec, key) if store is not None and key is not None else None
    todo: list[tuple[int, int]] = []
    if series is not None:
        assert store is not None
        todo = series.missing(draw_ids, store.task_draws or task_draws(block_size, work_flops))
        if todo and store.read_only:
            from verify.store import MissingDraws

            n = sum(hi - lo for lo, hi in todo)
            raise MissingDraws(f"the store {store.root} lacks {n} draw(s) of {series.describe()}")
    bar = tqdm(
        total=len(draw_ids) if series is None else sum(hi - lo for lo, hi in todo),
        desc=desc or f"{spec.family} dim={spec.dim} (d={spec.d})",
        unit="draw",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )
    threads = rt.threads_for(work_flops) if rt is not None else _keep()
    with bar, threads:
        if series is None:
            return _frame(spec, _run_blocks(draw_ids, block_fn, block_size, bar))
        for lo, hi in todo:
            columns = _run_blocks(list(range(lo, hi)), block_fn, block_size, bar)
            series.write(lo, hi, _record_columns(spec, columns))
    stored = series.read(draw_ids, drop=("arch", "dim", "d"))
    return _frame(spec, {k: [v] for k, v in stored.items()})


def _run_blocks(draw_ids: list[int], block_fn: BlockFn, block_size: int, bar) -> dict[str, list[np.ndarray]]:
    columns: dict[str, list[np.ndarray]] = {}
    for lo in range(0, len(draw_ids), block_size):
        ids = draw_ids[lo : lo + block_size]
        block = block_fn(ids)
        lengths = {len(v) for v in block.values()}
        if len(lengths) > 1:
            raise ValueError(f"block columns of unequal lengths {sorted(lengths)}")
        missing = {"draw", "input", "quantity", "value"} - set(block)
        if missing:
            raise ValueError(f"block lacks columns {sorted(missing)}")
        for name, col in block.items():
            columns.setdefault(name, []).append(np.asarray(col))
        bar.update(len(ids))
    return columns


class _keep:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def _record_columns(spec: Spec, columns: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """The record schema's columns, in order: ``arch, dim, d, draw, input, quantity``, the
    caller's key columns, ``value``."""
    joined = {k: np.concatenate(v) for k, v in columns.items()}
    n = len(joined["value"])
    extra = [k for k in joined if k not in RECORD_COLUMNS]
    return {
        "arch": np.full(n, spec.family, dtype=object),
        "dim": np.full(n, spec.dim, dtype=np.int64),
        "d": np.full(n, spec.d, dtype=np.int64),
        "draw": joined["draw"].astype(np.int64),
        "input": joined["input"].astype(np.int64),
        "quantity": joined["quantity"].astype(object),
        **{k: joined[k] for k in extra},
        "value": joined["value"].astype(np.float64),
    }


def _frame(spec: Spec, columns: dict[str, list[np.ndarray]]) -> pd.DataFrame:
    if not columns:
        data = {c: np.array([], dtype=object if c in ("arch", "quantity") else np.float64) for c in RECORD_COLUMNS}
        return pd.DataFrame(data)
    return pd.DataFrame(_record_columns(spec, columns))
