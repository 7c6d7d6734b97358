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
"""

from __future__ import annotations

import sys
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from graphs.spec import Spec
from verify.runtime import Runtime

__all__ = ["RECORD_COLUMNS", "BlockFn", "block_records", "monte_carlo", "show_progress"]

RECORD_COLUMNS = ("arch", "dim", "d", "draw", "input", "quantity", "value")

# draw ids of one block -> long-format columns of that block: at least draw, input,
# quantity and value, all of one length.
BlockFn = Callable[[Sequence[int]], Mapping[str, np.ndarray]]


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
) -> pd.DataFrame:
    """Run ``block_fn`` over ``draws`` in blocks of ``block_size``; long-format records.

    ``work_flops`` (the forward cost of one block) sets the thread count by the runtime's
    policy; without a runtime, torch's current setting is kept.
    """
    from tqdm import tqdm

    draw_ids = [int(i) for i in draws]
    block_size = max(1, int(block_size))
    columns: dict[str, list[np.ndarray]] = {}
    bar = tqdm(
        total=len(draw_ids),
        desc=desc or f"{spec.family} dim={spec.dim} (d={spec.d})",
        unit="draw",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )
    threads = rt.threads_for(work_flops) if rt is not None else _keep()
    with bar, threads:
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
    return _frame(spec, columns)


class _keep:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def _frame(spec: Spec, columns: dict[str, list[np.ndarray]]) -> pd.DataFrame:
    if not columns:
        data = {c: np.array([], dtype=object if c in ("arch", "quantity") else np.float64) for c in RECORD_COLUMNS}
        return pd.DataFrame(data)
    joined = {k: np.concatenate(v) for k, v in columns.items()}
    n = len(joined["value"])
    extra = [k for k in joined if k not in RECORD_COLUMNS]
    data = {
        "arch": np.full(n, spec.family, dtype=object),
        "dim": np.full(n, spec.dim, dtype=np.int64),
        "d": np.full(n, spec.d, dtype=np.int64),
        "draw": joined["draw"].astype(np.int64),
        "input": joined["input"].astype(np.int64),
        "quantity": joined["quantity"].astype(object),
        **{k: joined[k] for k in extra},
        "value": joined["value"].astype(np.float64),
    }
    return pd.DataFrame(data)
