"""The torch view of a spec: He-initialised weights and a functional forward pass.

Weights are a list (one entry per layer, ``None`` for pooling) so that many draws can be
stacked and mapped over with ``torch.func.vmap``. Randomness is an argument: weights are
drawn from a ``torch.Generator`` on the CPU (so a seed gives the same numbers on every
device) and then moved; draw i of a run seeded by ``seed`` is
``generator_for(Stream.WEIGHTS, seed, i)`` (``graphs.rng``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from graphs.layers import apply_activation
from graphs.rng import Stream, generator_for
from graphs.spec import Spec

__all__ = [
    "Params",
    "SpecNet",
    "build_module",
    "forward",
    "init_params",
    "sample_params",
    "trainable_module",
]

Params = list  # list[torch.Tensor | None], one entry per layer


def init_params(
    spec: Spec,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Params:
    """He initialisation: mean 0, variance 2 / fan_in, Gaussian, every layer (the last included).

    Each layer draws its own weights (``Layer.init_weight``) from ``generator``, in layer
    order, in float64; masked layers zero the weights off the mask, so the tensors are
    exactly the DAG's edges.
    """
    params: Params = []
    for layer in spec.layers:
        w = layer.init_weight(generator)
        params.append(None if w is None else w.to(dtype=dtype, device=device))
    return params


def sample_params(
    spec: Spec, seed: int, draw: int, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Params:
    """Weight draw number ``draw`` of a run seeded by ``seed`` (reproducible on its own)."""
    return init_params(spec, generator_for(Stream.WEIGHTS, seed, draw), dtype=dtype, device=device)


def forward(spec: Spec, params: Sequence[torch.Tensor | None], x: torch.Tensor) -> torch.Tensor:
    """Logits for a batch ``x`` of shape ``(B, *spec.input_shape)``; returns ``(B, K)``."""
    history = [x]
    for l, (layer, w) in enumerate(zip(spec.layers, params), start=1):
        h = apply_activation(layer.apply(w, [history[j] for j in layer.reads(l)]), layer.activation_name)
        history.append(h)
    return history[-1]


class SpecNet(nn.Module):
    """``forward(spec, params, .)`` as an ``nn.Module``; weights are buffers (no gradient)."""

    def __init__(self, spec: Spec, params: Params):
        super().__init__()
        self.spec = spec
        self._names: list[str | None] = []
        for i, w in enumerate(params):
            name = None
            if w is not None:
                name = f"weight{i}"
                self.register_buffer(name, w)
            self._names.append(name)

    @property
    def params(self) -> Params:
        return [None if n is None else getattr(self, n) for n in self._names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward(self.spec, self.params, x)


def build_module(
    spec: Spec,
    *,
    seed: int = 0,
    draw: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> SpecNet:
    """A He-initialised torch module for ``spec`` (draw ``draw`` of seed ``seed``)."""
    return SpecNet(spec, sample_params(spec, seed, draw, dtype=dtype, device=device))


def trainable_module(
    spec: Spec, seed: int = 0, draw: int = 0, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> nn.Module:
    """A trainable ``nn.Module`` of ``spec`` (``nn.Parameter`` weights of draw ``draw``, batch norm
    with running statistics, train/eval modes) whose forward equals ``forward(spec, params, .)``;
    see ``verify.trainable``."""
    from verify.trainable import trainable_module as build

    return build(spec, seed, draw, dtype=dtype, device=device)
