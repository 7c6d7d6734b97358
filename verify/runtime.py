"""The runtime policy every entry point uses: device, threads, floating-point precision, memory.

``with runtime(device="auto") as rt:`` resolves the device, fixes the precision flags, keeps
freed memory for reuse (``verify.allocator``) and restores torch's global settings on exit, so a
notebook's own settings survive a check. Inside, ``rt.threads_for(flops)`` applies the thread
policy to a piece of work, and ``rt.thread_tuner(flops)`` gives the engine a per-draw choice:

- work whose forward pass costs fewer than ``TUNE_FLOPS`` (the 32-pixel CNN) runs on one
  thread. Its operations are too small to split across cores, and with two threads every
  operation is a parallel region that stalls for a scheduler quantum whenever another
  process holds a core: measured on 2 cores under load, the 32x32 CNN took 6 ms per draw on
  one thread in every round but up to 270 ms on two; when idle, two threads were only
  10-30% faster there;
- larger work is timed: ``ThreadTuner`` runs draws on one thread and on all threads in turn,
  keeps the faster, and re-checks the other now and then (less often while the choice
  holds), so a machine that gets busy (two threads 2-4x slower than one, measured) or quiet
  again is followed within a few draws. A fixed ``threads`` turns the tuning off. Results do
  not depend on the thread count (a test checks it bit for bit), so the choice changes only
  the time. (``threads_for`` keeps the static rule, one thread below
  ``SINGLE_THREAD_FLOPS``, for the loops that are not tuned.)

Precision (``verify.settings.PRECISIONS``). cuDNN and cuBLAS default to TF32 for float32
convolutions and matmuls on recent GPUs, which moves per-sample gradients by up to 5% against
float64 (float32 proper: ~1e-6). ``"fp32"`` (the default) turns TF32 off; ``"tf32"`` allows
it; ``"bf16"`` evaluates the nets in bfloat16 (``Runtime.compute_dtype``). On a CPU, fp32 and
tf32 are the same arithmetic. On CUDA the runtime also lets cuDNN time its algorithms for the
engine's fixed shapes (``cudnn.benchmark``), so GPU results are reproducible to rounding, not
bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from graphs.errors import InputError
from verify.allocator import retain_freed_memory
from verify.settings import DEVICES, PRECISIONS

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "SINGLE_THREAD_FLOPS",
    "TUNE_FLOPS",
    "Runtime",
    "ThreadTuner",
    "resolve_device",
    "runtime",
]

SINGLE_THREAD_FLOPS = 1e9
# Work from this size up is timed on one thread and on all threads (ThreadTuner): the 64- and
# 128-pixel draws of the paper net (0.2 and 0.9 GFLOP) may gain from two threads on a quiet
# machine, and the tuner finds out instead of a fixed rule.
TUNE_FLOPS = 1e8


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` takes CUDA when available; ``cuda`` where there is none is an input error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available here; use --device cpu or --device auto")
        return torch.device("cuda")
    raise InputError(f"--device {name!r}: choose one of {', '.join(DEVICES)}")


class ThreadTuner:
    """The faster of several thread counts for a stream of like pieces of work, by timing them.

    ``next()`` says how many threads the next piece gets; ``record(threads, seconds, units)``
    reports how long it took for ``units`` draws. The first piece is a warm-up (the allocator
    fills, oneDNN builds its kernels) and is not counted. Then one piece at each count, and
    the tuner keeps the fastest (the median of each count's last three timings) and probes
    the others once every ``period`` pieces: a probe that confirms the choice doubles the
    period (up to ``max_period``), one that overturns it switches and resets the period.

    ``start``: a count believed best already (one thread on a machine that other processes
    keep busy): no exploration, the first probe after ``first_period`` pieces. Probing is
    what a wrong belief costs, and it is paid rarely.
    """

    def __init__(
        self, choices: Sequence[int], *, first_period: int = 4, max_period: int = 64, start: int | None = None
    ):
        self.choices = sorted({max(1, int(c)) for c in choices})
        if not self.choices:
            raise ValueError("ThreadTuner needs at least one thread count")
        self.first_period = max(1, int(first_period))
        self.max_period = max(self.first_period, int(max_period))
        self.period = self.first_period
        self._times: dict[int, deque[float]] = {c: deque(maxlen=3) for c in self.choices}
        self._warmed = False
        if start is not None and int(start) not in self.choices:
            raise ValueError(f"start {start} is not one of the choices {self.choices}")
        first = self.choices[0] if start is None else int(start)
        # a warm-up, then one timed piece per count, alternating so that a change of load hits all
        explore = [first, *(c for c in reversed(self.choices) if c != first), first] if start is None else [first]
        self._plan: deque[int] = deque(explore) if len(self.choices) > 1 else deque()
        self._since_probe = 0
        self._probing: int | None = None
        self.best = first
        self.history: list[int] = []

    def estimate(self, threads: int) -> float:
        """Seconds per unit at ``threads``: the median of its last timings (inf when untimed)."""
        t = sorted(self._times[threads])
        return t[(len(t) - 1) // 2] if t else math.inf

    def next(self) -> int:
        if self._plan:
            n = self._plan[0]
        elif self._since_probe >= self.period and len(self.choices) > 1:
            others = [c for c in self.choices if c != self.best]
            n = min(others, key=lambda c: len(self._times[c]))
            self._probing = n
        else:
            n = self.best
        self.history.append(n)
        return n

    def record(self, threads: int, seconds: float, units: int = 1) -> None:
        per = seconds / max(1, units)
        if not self._warmed:
            self._warmed = True
        else:
            self._times[threads].append(per)
        if self._plan and self._plan[0] == threads:
            self._plan.popleft()
            if not self._plan:
                self.best = min(self.choices, key=lambda c: (self.estimate(c), c != self.best))
                self._since_probe = 0
            return
        if self._probing == threads:
            self._probing = None
            self._since_probe = 0
            before = self.best
            self.best = min(self.choices, key=lambda c: (self.estimate(c), c != before))
            self.period = min(2 * self.period, self.max_period) if self.best == before else self.first_period
            return
        self._since_probe += 1


def _busy_elsewhere() -> float:
    """Runnable threads of other processes, roughly: the 1-minute load average less this
    process's own torch threads (0 where the OS has no load average)."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0
    return load - torch.get_num_threads()


@dataclass(frozen=True)
class Runtime:
    """A resolved runtime: where and how the Monte Carlo runs."""

    device: torch.device
    threads: int | None  # None: the automatic policy (module docstring)
    precision: str
    default_threads: int
    cuda_graphs: bool = True  # replay the engine's fixed-shape draw step from a CUDA graph (CUDA only)
    prefetch: int | None = None  # CPU threads drawing ahead; None: verify.draws.default_workers

    @property
    def description(self) -> str:
        """The device in words: ``cpu``, or the CUDA device's name and precision."""
        if self.device.type == "cpu":
            return "cpu" if self.precision != "bf16" else "cpu (bf16)"
        tf32 = {"fp32": "fp32, TF32 off", "tf32": "TF32", "bf16": "bf16"}[self.precision]
        return f"{self.device} ({torch.cuda.get_device_name(self.device)}, {tf32})"

    def compute_dtype(self, dtype: torch.dtype = torch.float32) -> torch.dtype:
        """The dtype nets are evaluated in: bfloat16 under ``bf16`` for a float32 request, else ``dtype``."""
        if self.precision == "bf16" and dtype == torch.float32:
            return torch.bfloat16
        return dtype

    def thread_count(self, flops: float | None) -> int:
        """Threads the policy gives to work of ``flops`` (forward pass of one piece of work)."""
        if self.threads is not None:
            return max(1, int(self.threads))
        if self.device.type == "cpu" and flops is not None and flops < SINGLE_THREAD_FLOPS:
            return 1
        return self.default_threads

    def thread_tuner(self, flops: float | None) -> ThreadTuner | None:
        """A ``ThreadTuner`` over one thread and all threads for CPU work of at least
        ``TUNE_FLOPS``; None where the count is fixed (a fixed ``threads``, one core, a GPU,
        or work so small that one thread is the answer)."""
        if self.threads is not None or self.device.type != "cpu" or self.default_threads <= 1:
            return None
        if flops is None or flops < TUNE_FLOPS:
            return None
        if _busy_elsewhere() >= 1.0:
            # other processes keep the cores busy: start on one thread and probe the others rarely
            return ThreadTuner([1, self.default_threads], start=1, first_period=16)
        return ThreadTuner([1, self.default_threads])

    @contextlib.contextmanager
    def threads_for(self, flops: float | None) -> Iterator[int]:
        """Set the thread count for a piece of work; restore it afterwards."""
        saved = torch.get_num_threads()
        n = self.thread_count(flops)
        torch.set_num_threads(n)
        try:
            yield n
        finally:
            torch.set_num_threads(saved)


@contextlib.contextmanager
def runtime(
    device: str | torch.device = "auto",
    *,
    threads: int | None = None,
    precision: str = "fp32",
    cuda_graphs: bool = True,
    prefetch: int | None = None,
) -> Iterator[Runtime]:
    """Resolve the device and precision, yield a ``Runtime``; restore torch's settings on exit."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if threads is not None and threads < 1:
        raise InputError(f"--threads: {threads} is not positive; give e.g. --threads 1")
    dev = resolve_device(device)
    saved_threads = torch.get_num_threads()
    saved_matmul = torch.backends.cuda.matmul.allow_tf32
    saved_cudnn = torch.backends.cudnn.allow_tf32
    saved_benchmark = torch.backends.cudnn.benchmark
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        with retain_freed_memory():
            yield Runtime(dev, threads, precision, saved_threads, cuda_graphs, prefetch)
    finally:
        torch.set_num_threads(saved_threads)
        torch.backends.cuda.matmul.allow_tf32 = saved_matmul
        torch.backends.cudnn.allow_tf32 = saved_cudnn
        torch.backends.cudnn.benchmark = saved_benchmark
