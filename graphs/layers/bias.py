"""Bias: one added constant per channel (per feature for vectors), zero at He initialisation.

A bias is a parameter, not an edge: the DAG gets one node per unit with a single in-edge of
constant weight 1 from the unit below, so path sums (factor 1) and Eq. 13 (factor 1 times the
activation's gate) pass through it unchanged. Its parameter is the tensor of biases, shape
``(channels,)``, drawn as zeros (no random number is consumed, so adding a bias leaves every
other layer's weights as they were). At zero it changes nothing; a trained, non-zero bias
(``--init keep``) moves the activation's gate away from one half, which the Monte Carlo
measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Iterator, Sequence

import torch

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer, require_weight

__all__ = ["Bias"]

_ONE = Fraction(1)


@register_layer
@dataclass(frozen=True)
class Bias(Layer):
    """``h + b[channel]`` on an activation with ``channels`` channels (its first axis)."""

    kind: ClassVar[str] = "bias"

    channels: int
    relu: bool = False
    activation: str | None = None

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = tuple(shapes[index - 1])
        if not prev or prev[0] != self.channels:
            raise SpecError(f"layer {index}: a bias of {self.channels} channels cannot follow shape {prev}")
        return prev

    def node_kind(self) -> str:
        return "pool"  # constant weights on its edges

    @property
    def constant_weight(self) -> Fraction:
        return _ONE

    def weight_shape(self) -> Shape:
        return (self.channels,)

    def init_weight(self, generator: torch.Generator) -> torch.Tensor:
        return torch.zeros(self.channels, dtype=torch.float64)

    def structural_weight(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> None:
        return None

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        for i in range(math.prod(shapes[index])):
            yield index - 1, i, i, {"weight_kind": "pool", "param": None, "value": _ONE}

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        if structural:
            return h
        b = require_weight(self, weight)
        return h + b.reshape(1, -1, *([1] * (h.dim() - 2)))

    def input_vjp(self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        return cotangent

    def describe(self) -> str:
        return f"bias({self.channels}{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "channels": int(self.channels), **self._activation_dict()}
