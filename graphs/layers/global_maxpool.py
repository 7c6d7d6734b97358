"""Global max pooling: each channel of an image reduced to its largest value, ``(C, H, W) -> (C,)``.

The head of the paper's Section 4.2 nets (``graphs.paper_net``). Every output depends on the
whole feature map of its channel (``H W`` in-edges of kind "max"), but its derivative keeps
one of them: the argmax, chosen by the values, so H1's independence fails as for
``graphs.layers.maxpool`` and Eq. 13 has no value here. Unlike global average pooling, the
gradient is not spread over ``H W`` positions, so the head does not damp it as the image
grows; the Monte Carlo measures how it scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import torch

from graphs.errors import InputError, SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer
from graphs.layers.maxpool import MAX_NOTE

__all__ = ["GlobalMaxPool"]


@register_layer
@dataclass(frozen=True)
class GlobalMaxPool(Layer):
    """The largest value of every channel over the image: ``(C, H, W) -> (C,)``."""

    kind: ClassVar[str] = "global-maxpool"

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
        raise InputError(f"{self.describe()}: Eq. 13 has no value on max pooling ({MAX_NOTE})")

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        c, h, w = shapes[index - 1]
        for ch in range(c):
            for i in range(h * w):
                yield index - 1, ch * h * w + i, ch, {"weight_kind": "max", "param": None, "value": None}

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        return h.sum(dim=(2, 3)) if structural else h.amax(dim=(2, 3))

    def hypothesis_notes(self) -> dict[str, str]:
        return {**super().hypothesis_notes(), "H1": MAX_NOTE}

    def describe(self) -> str:
        return f"global-maxpool({self._activation_suffix().lstrip(', ')})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._activation_dict()}
