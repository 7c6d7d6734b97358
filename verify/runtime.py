"""The runtime policy every entry point uses: device, threads and floating-point precision.

``with runtime(device="auto") as rt:`` resolves the device, fixes the matmul precision and
restores torch's global settings on exit, so a notebook's own settings survive a check.
Inside, ``rt.threads_for(flops)`` applies the thread policy to a piece of work:

- work whose forward pass costs fewer than ``SINGLE_THREAD_FLOPS`` runs on one thread. Its
  operations are too small to split across cores, and with two threads every operation is a
  parallel region that stalls for a scheduler quantum whenever another process holds a core:
  measured on 2 cores under load, the 32x32 CNN took 6 ms per draw on one thread in every
  round but up to 270 ms on two; when idle, two threads were only 10-30% faster there;
- larger work keeps torch's thread count (or the fixed ``threads`` of the runtime).

Precision. cuDNN and cuBLAS default to TF32 for float32 convolutions and matmuls on recent
GPUs, which moves per-sample gradients by up to 5% against float64 (float32 proper: 1e-4).
``precision="fp32"`` (the default) turns TF32 off; ``"tf32"`` allows it. Nothing changes on
a CPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from graphs.errors import InputError
from verify.settings import DEVICES, PRECISIONS

__all__ = ["DEVICES", "PRECISIONS", "SINGLE_THREAD_FLOPS", "Runtime", "resolve_device", "runtime"]

SINGLE_THREAD_FLOPS = 1e9


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


@dataclass(frozen=True)
class Runtime:
    """A resolved runtime: where and how the Monte Carlo runs."""

    device: torch.device
    threads: int | None  # None: the automatic policy (module docstring)
    precision: str
    default_threads: int

    @property
    def description(self) -> str:
        """The device in words: ``cpu``, or the CUDA device's name and precision."""
        if self.device.type == "cpu":
            return "cpu"
        return f"{self.device} ({torch.cuda.get_device_name(self.device)}, {self.precision})"

    def thread_count(self, flops: float | None) -> int:
        """Threads the policy gives to work of ``flops`` (forward pass of one piece of work)."""
        if self.threads is not None:
            return max(1, int(self.threads))
        if self.device.type == "cpu" and flops is not None and flops < SINGLE_THREAD_FLOPS:
            return 1
        return self.default_threads

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
    device: str | torch.device = "auto", *, threads: int | None = None, precision: str = "fp32"
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
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield Runtime(dev, threads, precision, saved_threads)
    finally:
        torch.set_num_threads(saved_threads)
        torch.backends.cuda.matmul.allow_tf32 = saved_matmul
        torch.backends.cudnn.allow_tf32 = saved_cudnn
