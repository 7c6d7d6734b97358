"""Sparse dense layer reading every earlier activation: the layers of a random DAG."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer, require_weight

__all__ = ["MaskedLinear"]


@register_layer
@dataclass(frozen=True, eq=False)
class MaskedLinear(Layer):
    """Sparse dense layer reading the concatenation of the input and *all* earlier layers.

    ``mask[j, s]`` is 1 when neuron ``j`` has an edge from source ``s`` of that concatenation
    (the flattened input first, then each earlier layer in order). Skip connections are
    sources outside the previous layer. Compared (and hashed) by identity: the mask is an array.
    """

    kind: ClassVar[str] = "masked-linear"

    mask: np.ndarray = field(repr=False)
    relu: bool = True
    activation: str | None = None

    @property
    def out_features(self) -> int:
        return int(self.mask.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.mask.shape[1])

    def reads(self, index: int) -> tuple[int, ...]:
        return tuple(range(index))

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        available = sum(math.prod(s) for s in shapes[:index])
        if self.in_features != available:
            raise SpecError(f"layer {index}: mask has {self.in_features} sources, the DAG has {available}")
        return (self.out_features,)

    def weight_shape(self) -> Shape:
        return (self.out_features, self.in_features)

    def fan_in(self) -> np.ndarray:
        """Per-neuron in-degree (the mask's row sums); the initialisation uses it, so H3 holds exactly."""
        return self.mask.sum(axis=1)

    def init_weight(self, generator: torch.Generator) -> torch.Tensor:
        w = torch.randn(self.weight_shape(), generator=generator, dtype=torch.float64)
        mask = torch.as_tensor(self.mask, dtype=torch.float64)
        fan = torch.as_tensor(self.fan_in(), dtype=torch.float64)
        return w * mask * torch.sqrt(2.0 / fan).unsqueeze(1)

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        offsets = np.concatenate([[0], np.cumsum([math.prod(s) for s in shapes[:index]])])
        src_layer = np.searchsorted(offsets, np.arange(self.in_features), side="right") - 1
        rows, cols = np.nonzero(self.mask)
        for r, c in zip(rows, cols):
            j = int(src_layer[c])
            yield (
                j,
                int(c - offsets[j]),
                int(r),
                {"weight_kind": "random", "param": (index, int(r), int(c)), "value": None},
            )

    def output_classes(self, outputs: Sequence[int]) -> list[list[int]]:
        # outputs with equal mask rows have the same in-edges
        groups: dict[bytes, list[int]] = {}
        for o in outputs:
            groups.setdefault(np.ascontiguousarray(self.mask[o]).tobytes(), []).append(o)
        return list(groups.values())

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        return F.linear(torch.cat([h.flatten(1) for h in inputs], dim=1), require_weight(self, weight))

    def structural_weight(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.as_tensor(self.mask, dtype=dtype, device=device)

    def flops(self, in_shapes: Sequence[Shape], out_shape: Shape) -> int:
        # runs as a dense matmul over all its sources, zeros included
        return 2 * self.in_features * self.out_features

    def describe(self) -> str:
        edges = int(np.count_nonzero(self.mask))
        return f"masked-linear({self.in_features}->{self.out_features}, {edges} edges{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mask": np.asarray(self.mask, dtype=np.int64).tolist(), **self._activation_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaskedLinear:
        return cls(
            np.asarray(data["mask"], dtype=np.int64),
            relu=bool(data.get("relu", True)),
            activation=data.get("activation"),
        )
