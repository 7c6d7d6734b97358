"""A fixed-shape step replayed from a CUDA graph, run eagerly elsewhere.

The engine evaluates groups of draws of one size with one function of fixed shapes (the
stacked weights, inputs and labels of G draws -> their quantities). On a GPU, launching its
few hundred kernels one by one from Python costs more than running them at small sizes;
``GraphedStep`` records them once into a CUDA graph (``torch.cuda.CUDAGraph``) and then
only copies the next group into the graph's input buffers and replays it. Anywhere else (a
CPU, or a step that cannot be captured) it calls the function directly, so the same code
path runs, and is tested, on a machine without a GPU.

The step must not synchronise with the host (no ``.item()``, no data-dependent shapes):
``verify.engine`` builds one-hot labels by comparison instead of ``F.one_hot`` for this.
A capture that fails falls back to eager calls, and says why in ``fallback_reason``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

__all__ = ["GraphedStep"]

# eager calls on a side stream before capture: cuDNN picks its algorithms, the allocator fills
_WARMUP_CALLS = 2


class GraphedStep:
    """``step(*args)`` for args shaped like ``example`` (nested lists of tensors and None).

    ``enabled`` and a CUDA ``example``: the first call captures, later calls replay. The
    returned tensors are the graph's own output buffers, overwritten by the next call:
    copy what you keep (the engine moves them to the host at once).
    """

    def __init__(self, fn: Callable[..., Any], *, enabled: bool = True):
        self.fn = fn
        self.enabled = enabled
        self.graph: torch.cuda.CUDAGraph | None = None
        self._static_in: list[Any] = []
        self._spec: Any = None
        self._static_out: Any = None
        self.fallback_reason: str | None = None
        self.replays = 0

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def _flat(self, args: Sequence[Any]) -> tuple[list[Any], Any]:
        return tree_flatten(list(args))

    def _capture(self, args: Sequence[Any]) -> None:
        flat, spec = self._flat(args)
        self._spec = spec
        self._static_in = [t.clone() if isinstance(t, torch.Tensor) else t for t in flat]
        static_args = tree_unflatten(self._static_in, spec)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(_WARMUP_CALLS):
                self.fn(*static_args)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static_out = self.fn(*static_args)
        self.graph = graph

    def __call__(self, *args: Any) -> Any:
        if not self.enabled:
            return self.fn(*args)
        if self.graph is None:
            flat, _ = self._flat(args)
            tensors = [t for t in flat if isinstance(t, torch.Tensor)]
            if not tensors or tensors[0].device.type != "cuda":
                self.enabled = False
                return self.fn(*args)
            try:
                self._capture(args)
            except Exception as exc:  # any capture failure: the eager path gives the same numbers
                self.enabled = False
                self.graph = None
                self.fallback_reason = f"{type(exc).__name__}: {exc}"
                torch.cuda.synchronize()
                return self.fn(*args)
        flat, spec = self._flat(args)
        if spec != self._spec:
            raise ValueError("GraphedStep called with arguments of another structure than it captured")
        for dst, src in zip(self._static_in, flat):
            if isinstance(dst, torch.Tensor):
                if dst.shape != src.shape or dst.dtype != src.dtype:
                    raise ValueError(f"GraphedStep captured shape {tuple(dst.shape)}, got {tuple(src.shape)}")
                dst.copy_(src, non_blocking=True)
        assert self.graph is not None
        self.graph.replay()
        self.replays += 1
        return self._static_out
