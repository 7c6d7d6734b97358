"""Fully connected layer on the flattened previous activation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer, require_weight

__all__ = ["Linear"]


@register_layer
@dataclass(frozen=True)
class Linear(Layer):
    """Fully connected layer on the flattened previous activation."""

    kind: ClassVar[str] = "linear"

    in_features: int
    out_features: int
    relu: bool = True
    activation: str | None = None

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = shapes[index - 1]
        if math.prod(prev) != self.in_features:
            raise SpecError(f"layer {index}: dense layer expects {self.in_features} inputs, got {math.prod(prev)}")
        return (self.out_features,)

    def weight_shape(self) -> Shape:
        return (self.out_features, self.in_features)

    def fan_in(self) -> int:
        return self.in_features

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        for t in range(self.out_features):
            for s in range(self.in_features):
                yield index - 1, s, t, {"weight_kind": "random", "param": (index, t, s), "value": None}

    def output_classes(self, outputs: Sequence[int]) -> list[list[int]]:
        # every output reads every unit: identical in-edges, one class
        return [list(outputs)]

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        return F.linear(h.flatten(1), require_weight(self, weight))

    def input_vjp(self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        g = (cotangent @ require_weight(self, weight)).view(input_shape)
        if g.dim() == 4:
            g = g.contiguous(memory_format=torch.channels_last)
        return g

    def flops(self, in_shapes: Sequence[Shape], out_shape: Shape) -> int:
        return 2 * self.in_features * self.out_features

    def describe(self) -> str:
        return f"linear({self.in_features}->{self.out_features}{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "in_features": int(self.in_features),
            "out_features": int(self.out_features),
            **self._activation_dict(),
        }
