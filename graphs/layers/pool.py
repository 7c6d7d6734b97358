"""Non-overlapping average pooling: constant weights 1/a on a window of a = window^2 pixels."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer

__all__ = ["AvgPool2d"]


@register_layer
@dataclass(frozen=True)
class AvgPool2d(Layer):
    """Non-overlapping ``window x window`` average pooling: constant weights 1/window^2."""

    kind: ClassVar[str] = "avgpool2d"

    window: int
    relu: bool = False
    activation: str | None = None

    @property
    def area(self) -> int:
        return self.window * self.window

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = shapes[index - 1]
        if len(prev) != 3:
            raise SpecError(f"layer {index}: pooling needs an image, got shape {prev}")
        if self.window < 1 or prev[1] % self.window or prev[2] % self.window:
            raise SpecError(
                f"layer {index}: a {self.window}x{self.window} pooling window does not tile a "
                f"{prev[1]}x{prev[2]} activation; give --dims divisible by the product of the windows"
            )
        return (prev[0], prev[1] // self.window, prev[2] // self.window)

    def node_kind(self) -> str:
        return "pool"

    @property
    def constant_weight(self) -> Fraction:
        return Fraction(1, self.area)

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        c, h, w = shapes[index - 1]
        _, ho, wo = shapes[index]
        a = self.window
        value = self.constant_weight
        for ch in range(c):
            for oy in range(ho):
                for ox in range(wo):
                    dst = (ch * ho + oy) * wo + ox
                    for dy in range(a):
                        for dx in range(a):
                            src = (ch * h + oy * a + dy) * w + ox * a + dx
                            yield index - 1, src, dst, {"weight_kind": "pool", "param": None, "value": value}

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        out = F.avg_pool2d(h, self.window)
        # structural: every edge weighs 1, so the window sums instead of averaging
        return out * self.area if structural else out

    def row_sources(self, lo: int, hi: int, in_shape: Shape) -> list[int | None]:
        return list(range(lo * self.window, hi * self.window))

    def apply_rows(self, weight: torch.Tensor | None, rows: torch.Tensor, *, structural: bool = False) -> torch.Tensor:
        return self.apply(weight, [rows], structural=structural)

    def input_vjp(self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        like = torch.empty(
            input_shape, dtype=cotangent.dtype, device=cotangent.device, memory_format=torch.channels_last
        )
        k = [self.window] * 2
        return torch.ops.aten.avg_pool2d_backward(cotangent, like, k, k, [0, 0], False, True, None)

    # Constant 1/a weights are Theorem 10's own setting (it extends Theorem 5 to them), so the
    # kind breaks nothing by construction beyond its activation (the base hypothesis_notes);
    # how far H1 holds for the neighbours one node averages is measured by the Monte Carlo
    # against Eq. 13 (verify pooling).

    def describe(self) -> str:
        return f"avgpool2d({self.window}x{self.window}{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "window": int(self.window), **self._activation_dict()}
