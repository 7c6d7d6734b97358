"""A dense layer whose initialisation divides by a wrong fan-in: the planted H3 violations of
``verify calibrate``.

``MiscountedLinear`` is ``Linear`` in every respect (the DAG, the torch map, the engine's
adjoint) except the variance of its weights: ``2 / counted`` instead of ``2 / in_features``.
``counted`` is what the buggy initialisation believes the fan-in is, e.g. the number of pixels
instead of the number of coordinates of a 3-channel image (a constant factor), or
``isqrt(d)`` (a variance that grows with d relative to He's). ``fan_in`` returns it, as the
protocol asks ("the fan-in He initialisation divides by"), so the exact side sees the
violation (``graphs.hypotheses`` flags every neuron of the layer) and Eq. 13 with the init's
variances (``graphs.moments``) predicts what the Monte Carlo should measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from graphs.errors import SpecError
from graphs.layers.base import register_layer
from graphs.layers.linear import Linear

__all__ = ["MiscountedLinear"]


@register_layer
@dataclass(frozen=True)
class MiscountedLinear(Linear):
    """``Linear`` initialised with variance ``2 / counted`` instead of ``2 / in_features``."""

    kind: ClassVar[str] = "miscounted-linear"

    counted: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.counted, bool) or int(self.counted) != self.counted or self.counted < 1:
            raise SpecError(f"miscounted-linear: counted fan-in must be a positive integer, got {self.counted!r}")

    def fan_in(self) -> int:
        return int(self.counted)

    def init_weight(self, generator: torch.Generator) -> torch.Tensor:
        w = torch.randn(self.weight_shape(), generator=generator, dtype=torch.float64)
        return w * (2.0 / int(self.counted)) ** 0.5

    def hypotheses_broken(self) -> tuple[str, ...]:
        return ("H3",) if self.counted != self.in_features else ()

    def describe(self) -> str:
        relu = ", relu" if self.relu else ""
        return f"miscounted-linear({self.in_features}->{self.out_features}, fan-in counted as {self.counted}{relu})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "kind": self.kind, "counted": int(self.counted)}
