"""Tap: an earlier activation, unchanged, as the start of a side branch.

Layers read the previous activation; a skip branch that begins with an operation (the 1x1
convolution of a projection skip, a pooling) must read an earlier one. ``Tap(back)`` at
layer ``index`` copies activation ``index - back``: one in-edge of constant weight 1 per
node, so path sums (factor 1/1) and Eq. 13 (factor 1) are unchanged by it, and the branch's
next layer reads it as the previous activation. ``Tap(1, activation=...)`` is an activation
on its own, for a pre-activation that other layers also read (``verify.trace`` uses both).
The copied nodes are a layer of their own, so a path-degree (``graphs.symmetry``) through
the branch carries one more in-degree 1 than the same path would without the tap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Iterator, Sequence

import torch

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer

__all__ = ["Tap"]

_ONE = Fraction(1)


@register_layer
@dataclass(frozen=True)
class Tap(Layer):
    """Activation ``index - back`` copied (``back >= 1``), then the activation."""

    kind: ClassVar[str] = "tap"

    back: int
    relu: bool = False
    activation: str | None = None

    def reads(self, index: int) -> tuple[int, ...]:
        return (index - self.back,)

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        if isinstance(self.back, bool) or int(self.back) != self.back or self.back < 1 or index - self.back < 0:
            raise SpecError(f"layer {index}: a tap reads an activation 1..{index} layers back, got back={self.back!r}")
        return tuple(shapes[index - self.back])

    def node_kind(self) -> str:
        return "pool"  # constant weights

    @property
    def constant_weight(self) -> Fraction:
        return _ONE

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        for i in range(math.prod(shapes[index])):
            yield index - self.back, i, i, {"weight_kind": "pool", "param": None, "value": _ONE}

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        return h

    def input_vjp(self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        return cotangent

    def describe(self) -> str:
        return f"tap({self.back} back{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "back": int(self.back), **self._activation_dict()}
