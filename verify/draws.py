"""One weight draw's random numbers, ready for the device, drawn ahead of the compute.

Draw i of a run is ``sample_params / sample_inputs / sample_labels(spec, seed, i, ...)``:
CPU generators of the streams ``(seed, i)`` of ``graphs.rng``, in float64. ``DrawSampler``
draws them on the CPU and rounds them to the compute dtype there (IEEE rounding, the same
on every device), so draw i on a GPU gets exactly the weights, inputs and labels that draw i
gets on the CPU; only the arithmetic of the net differs (rounding, measured by
``bench/bench_gpu.py`` and the report's precision line).

Drawing is about 16 ms of CPU per draw of the 3x256x256 net (~0.6 million float64 normals),
longer than the GPU needs for the draw itself. ``Prefetcher`` therefore draws the next
draws on a pool of CPU threads while the device computes (torch releases the GIL inside its
kernels, and every draw has its own generator), into pinned memory for asynchronous copies.
Drawing on the GPU instead (a CUDA generator) would be faster still but would give other
numbers than the CPU for the same (seed, i); keeping one stream for every device was chosen.
On a CPU-only run the pool has no workers and draws happen in line: there the cores are
busy with the nets.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch

from graphs.spec import Spec
from verify.model import sample_params
from verify.sampling import sample_inputs, sample_labels

__all__ = ["Draw", "DrawSampler", "Prefetcher", "default_workers", "stack_draws"]


class Draw(NamedTuple):
    """The random numbers of one draw: weights (None for constant-weight layers), inputs, labels."""

    params: list[torch.Tensor | None]
    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class DrawSampler:
    """Draw ``i`` of ``spec`` under ``seed`` in ``dtype`` on the CPU (``pin``: in pinned memory)."""

    spec: Spec
    seed: int
    batch: int
    dtype: torch.dtype = torch.float32
    inputs: str = "normal"
    base_dim: int | None = None
    pin: bool = False

    def sample(self, draw: int) -> Draw:
        params = sample_params(self.spec, self.seed, draw, dtype=self.dtype)
        x = sample_inputs(
            self.spec, self.seed, draw, self.batch, kind=self.inputs, base_dim=self.base_dim, dtype=self.dtype
        )
        y = sample_labels(self.spec, self.seed, draw, self.batch)
        if self.pin:
            params = [None if w is None else w.pin_memory() for w in params]
            x, y = x.pin_memory(), y.pin_memory()
        return Draw(params, x, y)


def stack_draws(draws: Sequence[Draw], device: torch.device | str) -> Draw:
    """Draws stacked along a new leading axis (weights ``(G, ...)``, inputs ``(G, B, ...)``) on ``device``.

    On a GPU each draw is copied into its slot of the device tensor straight from its own
    (pinned) memory, asynchronously: no stacking on the host, and the copies queue behind
    the device's work.
    """
    device = torch.device(device)

    def move(ts: list[torch.Tensor]) -> torch.Tensor:
        if device.type == "cpu":
            return torch.stack(ts) if len(ts) > 1 else ts[0].unsqueeze(0)
        out = torch.empty((len(ts), *ts[0].shape), dtype=ts[0].dtype, device=device)
        for k, t in enumerate(ts):
            out[k].copy_(t, non_blocking=t.is_pinned())
        return out

    first = draws[0].params
    params = [None if w is None else move([d.params[j] for d in draws]) for j, w in enumerate(first)]  # pyright: ignore[reportArgumentType]
    return Draw(params, move([d.x for d in draws]), move([d.y for d in draws]))


def default_workers(device: torch.device) -> int:
    """CPU threads that draw ahead: none on a CPU run; on CUDA every core but two (one feeds
    the GPU, one runs the exact side beside it), at most 14. At ~16 ms of CPU per draw of
    the 256-pixel net, 14 threads draw one every ~1.2 ms."""
    if device.type == "cpu":
        return 0
    return max(1, min(14, (os.cpu_count() or 3) - 2))


class Prefetcher:
    """Draws of ``order`` sampled ``lookahead`` draws ahead of the one asked for.

    ``get(ids)`` returns the draws ``ids`` (sampled now if they were not drawn ahead) and starts
    the draws that follow the last of them in ``order``. Draws skipped in ``order`` (a block
    already in a results store) are dropped, so memory holds at most ``lookahead`` draws
    ahead. Without workers everything is drawn in line. Use as a context manager.
    """

    def __init__(self, sampler: DrawSampler, order: Sequence[int], *, workers: int = 0, lookahead: int = 0):
        self.sampler = sampler
        self.order = [int(i) for i in order]
        self._pos = {d: k for k, d in enumerate(self.order)}
        self.workers = max(0, int(workers))
        self.lookahead = max(0, int(lookahead)) if self.workers else 0
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="draws") if self.workers else None
        self._pending: OrderedDict[int, Future[Draw]] = OrderedDict()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for f in self._pending.values():
            f.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _submit(self, draw: int) -> None:
        if self._pool is not None and draw not in self._pending:
            self._pending[draw] = self._pool.submit(self.sampler.sample, draw)

    def get(self, ids: Sequence[int]) -> list[Draw]:
        ids = [int(i) for i in ids]
        if self._pool is None:
            return [self.sampler.sample(i) for i in ids]
        for i in ids:
            self._submit(i)
        last = max((self._pos[i] for i in ids if i in self._pos), default=-1)
        for k in range(last + 1, min(len(self.order), last + 1 + self.lookahead)):
            self._submit(self.order[k])
        out = [self._pending.pop(i).result() for i in ids]
        # draws before this block that were never asked for (skipped blocks) are dropped
        stale = [d for d in self._pending if self._pos.get(d, len(self.order)) <= last]
        for d in stale:
            self._pending.pop(d).cancel()
        return out
