"""Residual addition: the previous activation plus an earlier one (a skip connection).

``Add(back)`` at layer ``index`` reads activations ``index - 1`` (the end of the residual
branch) and ``index - back`` (the skip's source) and adds them; both must have one shape.
Each output node has two in-edges, of constant weight 1, so the DAG, the path sums and the
path counting of Theorem 5 see both branches: a path may run through the residual branch or
jump over it. A projection skip (a 1x1 convolution on the skip, when the branch changes the
channels or the size) is ``Tap(back)`` (``graphs.layers.tap``) followed by a 1x1
``Conv2d`` and then ``Add``: every node keeps one kind of in-edge (random or constant), which
Eq. 13's node factors need.

Hypotheses. The skip's weight 1 is not a centred random weight. Its second moment is H3's
``2 / d_p`` exactly (``d_p = 2``), and the proof of Theorem 5 uses the mean 0 only to drop
the cross terms of two paths that part at this node; those still vanish as long as the
residual branch carries a centred random weight (every convolution does) that the skip path
does not. An addition without activation therefore breaks no hypothesis: Eq. 13 holds with
factor 1 on its nodes (a dense residual net matches it within Monte Carlo error).

An activation *after* the addition (the ReLU that ends a standard basic block) breaks H1 by
construction. Its pre-activation is ``branch + skip``: flipping the signs of the branch's
weights flips only the first term, so the sign-flip argument that makes a ReLU gate open
with probability 1/2 independently of the path is gone; and when the skip carries a ReLU's
output it is non-negative, so the gate is open more than half the time, and most where the
path's own contribution is large. Measured on small nets (``graphs.moments`` Eq. 13 against
the Monte Carlo, 300-1500 draws): E||d_x f||^2 is 1.35x to 1.85x the (H) value with that ReLU
(two or three blocks, dense or convolutional), and within 1.5% of it (dense: exact) without.
The excess is a constant factor: the slopes against d stay Theorem 5's (``verify compare``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Iterator, Sequence

import torch

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer

__all__ = ["Add"]

_ONE = Fraction(1)


@register_layer
@dataclass(frozen=True)
class Add(Layer):
    """The previous activation plus activation ``index - back`` (``back >= 2``)."""

    kind: ClassVar[str] = "add"

    back: int
    relu: bool = False
    activation: str | None = None

    def reads(self, index: int) -> tuple[int, ...]:
        return (index - 1, index - self.back)

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        if isinstance(self.back, bool) or int(self.back) != self.back or self.back < 2 or index - self.back < 0:
            raise SpecError(
                f"layer {index}: a residual addition reads the previous activation and one 2..{index} layers back, "
                f"got back={self.back!r}"
            )
        main, skip = tuple(shapes[index - 1]), tuple(shapes[index - self.back])
        if main != skip:
            raise SpecError(
                f"layer {index}: residual addition of shapes {main} and {skip} (activation {index - self.back}); "
                "put a projection (tap + 1x1 conv) on the skip"
            )
        return main

    def node_kind(self) -> str:
        return "pool"  # constant weights

    @property
    def constant_weight(self) -> Fraction:
        return _ONE

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        size = math.prod(shapes[index])
        for src in (index - 1, index - self.back):
            for i in range(size):
                yield src, i, i, {"weight_kind": "pool", "param": None, "value": _ONE}

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        main, skip = inputs
        return main + skip

    def hypothesis_notes(self) -> dict[str, str]:
        notes = super().hypothesis_notes()
        if self.activation_name != "identity" and "H1" not in notes:
            notes["H1"] = (
                f"{self.activation_name} after a residual addition: its pre-activation is branch + skip and only the "
                "branch changes sign with the branch's weights (a ReLU output on the skip is non-negative), so the gate "
                "is open more than half the time and depends on the path"
            )
        return notes

    def describe(self) -> str:
        return f"add(prev + {self.back} back{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "back": int(self.back), **self._activation_dict()}
