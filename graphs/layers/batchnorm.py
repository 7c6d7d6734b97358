"""Batch normalisation, per channel (images) or per feature (vectors), in one of two modes.

``mode="train"`` normalises with the statistics of the batch, as a net does while it trains:
``y = gamma (h - mean_B) / sqrt(var_B + eps) + beta``, mean and (biased) variance over the
batch and the image positions of each channel. ``mode="eval"`` uses the running statistics
instead: a fixed per-channel affine map. The parameter is one tensor of shape ``(4, C)``:
rows gamma, beta, running mean, running variance, drawn as 1, 0, 0, 1 (PyTorch's
initialisation; no random number is consumed).

What a per-sample input gradient means in train mode. The batch statistics make every
sample's output depend on every other sample of its batch. For an attack on one input x_i,
with the rest of the batch as it is, the relevant quantity is the gradient of that sample's
own loss with respect to its own input, the statistics differentiated (x_i moves them too):
``d L_i / d x_i``, the diagonal block of the batch Jacobian. That is what the toolkit
measures (``verify.sampling.input_gradients``); it differs from the gradient of the summed
losses with respect to x_i, which also carries how x_i moves the other samples' losses.

DAG. In eval mode each node has one in-edge, of constant weight ``gamma / sqrt(var + eps)``
(the DAG states it at the initial statistics: ``1/sqrt(1 + eps)``), a node of Theorem 10's
kind. In train mode, within one sample, an output depends on every position of its channel
(through the mean and the variance): ``H W`` in-edges of kind "batch" (one for a vector's
feature), which is the support of the diagonal block above.

Hypotheses. Train mode: the effective weight ``gamma / sigma_B`` is a function of the weights
of the layers below and of the inputs, so weights and gates after it are not independent of
those before (H1's independence, H4), and Eq. 13 has no value. Eval mode at the initial
statistics is the constant scaling above and breaks nothing; trained statistics shift the
pre-activation (``beta - gamma mean / sigma``), which moves the ReLU gate off one half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F

from graphs.errors import InputError, SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer, require_weight

__all__ = ["BN_MODES", "BatchNorm"]

BN_MODES = ("train", "eval")


@register_layer
@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation of ``channels`` channels with batch (``train``) or running (``eval``) statistics."""

    kind: ClassVar[str] = "batchnorm"

    channels: int
    mode: str = "train"
    eps: float = 1e-5
    relu: bool = False
    activation: str | None = None

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = tuple(shapes[index - 1])
        if self.mode not in BN_MODES:
            raise SpecError(f"layer {index}: batch-norm mode {self.mode!r}; use one of {', '.join(BN_MODES)}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise SpecError(f"layer {index}: batch-norm eps must be positive, got {self.eps}")
        if len(prev) not in (1, 3) or prev[0] != self.channels:
            raise SpecError(f"layer {index}: batch norm of {self.channels} channels cannot follow shape {prev}")
        return prev

    def node_kind(self) -> str:
        return "pool"  # no random weight

    @property
    def couples_samples(self) -> bool:
        return self.mode == "train"

    @property
    def init_scale(self) -> float:
        """``gamma / sqrt(var + eps)`` at the initial statistics."""
        return 1.0 / math.sqrt(1.0 + self.eps)

    # ------------------------------------------------------------------ weights

    def weight_shape(self) -> Shape:
        return (4, self.channels)

    def init_weight(self, generator: torch.Generator) -> torch.Tensor:
        ones, zeros = torch.ones(self.channels, dtype=torch.float64), torch.zeros(self.channels, dtype=torch.float64)
        return torch.stack([ones, zeros, zeros, ones])

    def structural_weight(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> None:
        return None

    def second_moment(self, degree: torch.Tensor, variance: str) -> torch.Tensor:
        if self.mode == "train":
            raise InputError(
                f"{self.describe()}: Eq. 13 has no value with batch statistics (the weight gamma/sigma_B depends on "
                "the weights below and on the inputs: H1, H4)"
            )
        return torch.full_like(degree, self.init_scale**2)

    # ------------------------------------------------------------------ exact side

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        shape = shapes[index]
        if self.mode == "eval":
            value = Fraction(self.init_scale)
            for i in range(math.prod(shape)):
                yield index - 1, i, i, {"weight_kind": "pool", "param": None, "value": value}
            return
        plane = math.prod(shape[1:])
        for ch in range(shape[0]):
            for t in range(plane):
                for s in range(plane):
                    yield (
                        index - 1,
                        ch * plane + s,
                        ch * plane + t,
                        {"weight_kind": "batch", "param": None, "value": None},
                    )

    # ------------------------------------------------------------------ torch side

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        if structural:
            if self.mode == "eval" or h.dim() == 2:
                return h
            return h.sum(dim=(2, 3), keepdim=True).expand_as(h)
        gamma, beta, mean, var = require_weight(self, weight)
        if self.mode == "eval":
            return F.batch_norm(h, mean, var, gamma, beta, training=False, eps=self.eps)
        if h.shape[0] * math.prod(h.shape[2:]) < 2:
            raise InputError(
                f"{self.describe()}: batch statistics of one value per channel are undefined; "
                "give --batch 2 or more (or use batch norm in eval mode)"
            )
        # no running statistics: the functional forward never updates state
        return F.batch_norm(h, None, None, gamma, beta, training=True, eps=self.eps)

    def input_vjp(self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        if self.mode != "eval":
            raise ValueError("batch norm with batch statistics has no per-sample adjoint; use autograd")
        gamma, _, _, var = require_weight(self, weight)
        scale = gamma / torch.sqrt(var + self.eps)
        return cotangent * scale.reshape(1, -1, *([1] * (cotangent.dim() - 2)))

    def has_input_vjp(self) -> bool:
        return self.mode == "eval"

    # ------------------------------------------------------------------ reporting

    def hypothesis_notes(self) -> dict[str, str]:
        notes = super().hypothesis_notes()
        if self.mode == "train":
            notes["H1"] = (
                "batch norm with batch statistics: the effective weight gamma/sigma_B is a function of the weights below "
                "and of the inputs, so the gates after it are not independent of the weights (H1)"
            )
            notes["H4"] = (
                "batch norm with batch statistics: sigma_B is set by the previous layers' weights, so the effective "
                "weights of different layers are not independent (H4)"
            )
        return notes

    def describe(self) -> str:
        return f"batchnorm({self.channels}, {self.mode}{self._activation_suffix()})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "channels": int(self.channels), "mode": str(self.mode)}
        if self.eps != 1e-5:
            out["eps"] = float(self.eps)
        return {**out, **self._activation_dict()}
