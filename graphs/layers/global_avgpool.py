"""Global average pooling: each channel of an image averaged to one number, ``(C, H, W) -> (C,)``.

Every output has ``a = H W`` in-edges of constant weight ``1/a``: a pooling node of Theorem 10
whose degree grows with the image. Through it, ``E||d_x f_k||_2^2`` is divided by ``a``
(Eq. 13's factor ``1/a^2`` on ``a`` in-edges, against Lemma 7's ``1/a``), so a net whose head
averages a feature map of ``a ~ d`` positions has ``||d_x f_k||_2 ~ d^(-1/2)`` at
initialisation and ``eps_2 ||d_x L||_2`` flat in d, where Theorem 5 alone would give sqrt(d).
That is Theorem 10, not a broken hypothesis: the kind breaks none by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Iterator, Sequence

import torch

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer

__all__ = ["GlobalAvgPool"]


@register_layer
@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """The mean of every channel over the image: ``(C, H, W) -> (C,)``."""

    kind: ClassVar[str] = "global-avgpool"

    relu: bool = False
    activation: str | None = None

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = shapes[index - 1]
        if len(prev) != 3:
            raise SpecError(f"layer {index}: global pooling needs an image, got shape {prev}")
        return (prev[0],)

    def node_kind(self) -> str:
        return "pool"

    def second_moment(self, degree: torch.Tensor, variance: str) -> torch.Tensor:
        # constant weights 1/a with a = the node's in-degree (the whole feature map)
        return 1.0 / degree.clamp(min=1) ** 2

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        c, h, w = shapes[index - 1]
        value = Fraction(1, h * w)
        for ch in range(c):
            for i in range(h * w):
                yield index - 1, ch * h * w + i, ch, {"weight_kind": "pool", "param": None, "value": value}

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        return h.sum(dim=(2, 3)) if structural else h.mean(dim=(2, 3))

    def input_vjp(self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        area = math.prod(input_shape[2:])
        g = (cotangent / area).reshape(*cotangent.shape, 1, 1).expand(input_shape)
        return g.contiguous(memory_format=torch.channels_last)

    def describe(self) -> str:
        return f"global-avgpool({self._activation_suffix().lstrip(', ')})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._activation_dict()}
