"""Max pooling: each output is the largest input of its window (``window x window``, stride
``stride``, default the window: non-overlapping; ``padding`` pixels of -inf on each side).

The DAG records which inputs each output depends on: every input of its window, by an edge of
kind "max". The derivative along such an edge is 1 on the window's argmax and 0 elsewhere:
the map is piecewise linear, and its Jacobian at any point keeps exactly one edge per output
(a test checks that support against the DAG). Path sums, (S) and H3 are properties of this
structure and are computed as for any DAG.

Hypotheses. Which edge passes the gradient is decided by the values themselves: the selected
input is the largest of its window, so the ReLU before it is active with probability
1 - 2^-a (a inputs) rather than 1/2, and the selection depends on the weights that made those
values. H1's independence of gates and weights fails by construction, and Eq. 13 has no value
here (``second_moment`` refuses); only the Monte Carlo measures these nets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F

from graphs.errors import InputError, SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer

__all__ = ["MAX_NOTE", "MaxPool2d"]

MAX_NOTE = (
    "the derivative of a maximum is 1 on the argmax and 0 elsewhere, and which input is the argmax depends on the "
    "values (the selected one is the largest, so the gate before it is active with probability 1 - 2^-a, not 1/2): "
    "gates are not independent of the weights (H1)"
)


@register_layer
@dataclass(frozen=True)
class MaxPool2d(Layer):
    """``window x window`` max pooling with the given stride (default: the window) and padding."""

    kind: ClassVar[str] = "maxpool2d"

    window: int
    stride: int | None = None
    padding: int = 0
    relu: bool = False
    activation: str | None = None

    @property
    def step(self) -> int:
        return self.window if self.stride is None else self.stride

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = shapes[index - 1]
        if len(prev) != 3:
            raise SpecError(f"layer {index}: max pooling needs an image, got shape {prev}")
        k, s, p = self.window, self.step, self.padding
        if k < 1 or s < 1 or p < 0 or 2 * p > k:
            raise SpecError(f"layer {index}: max pooling needs window, stride >= 1 and 0 <= padding <= window/2")
        ho, wo = (prev[1] + 2 * p - k) // s + 1, (prev[2] + 2 * p - k) // s + 1
        if ho < 1 or wo < 1:
            raise SpecError(f"layer {index}: a {k}x{k} max-pooling window does not fit a {prev[1]}x{prev[2]} input")
        return (prev[0], ho, wo)

    def node_kind(self) -> str:
        return "pool"

    def second_moment(self, degree: torch.Tensor, variance: str) -> torch.Tensor:
        raise InputError(f"{self.describe()}: Eq. 13 has no value on max pooling ({MAX_NOTE})")

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        c, h, w = shapes[index - 1]
        _, ho, wo = shapes[index]
        k, s, p = self.window, self.step, self.padding
        for ch in range(c):
            for oy in range(ho):
                for ox in range(wo):
                    dst = (ch * ho + oy) * wo + ox
                    for dy in range(k):
                        iy = oy * s + dy - p
                        if not 0 <= iy < h:
                            continue
                        for dx in range(k):
                            ix = ox * s + dx - p
                            if 0 <= ix < w:
                                yield (
                                    index - 1,
                                    (ch * h + iy) * w + ix,
                                    dst,
                                    {"weight_kind": "max", "param": None, "value": None},
                                )

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        k, s, p = self.window, self.step, self.padding
        if structural:
            # every edge weighs 1: the window's sum, padding counted as zeros
            return F.avg_pool2d(h, k, s, p, count_include_pad=True) * (k * k)
        return F.max_pool2d(h, k, s, p)

    def hypothesis_notes(self) -> dict[str, str]:
        return {**super().hypothesis_notes(), "H1": MAX_NOTE}

    def describe(self) -> str:
        extra = "" if self.stride is None else f", s{self.stride}"
        extra += f", p{self.padding}" if self.padding else ""
        return f"maxpool2d({self.window}x{self.window}{extra}{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "window": int(self.window)}
        if self.stride is not None:
            out["stride"] = int(self.stride)
        if self.padding:
            out["padding"] = int(self.padding)
        return {**out, **self._activation_dict()}
