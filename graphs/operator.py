"""Operator form of path sums: sums over all paths x -> o as one vector-Jacobian product.

Any sum ``sum_{paths x->o} prod_{p in p~} m(p)`` whose factor depends only on the node p
(its layer, kind and in-degree) is the Jacobian row ``d o / d x`` of a *linear* network whose
every edge into p weighs ``m(p)``. Counting edges with multiplicity (reflect padding can
connect one input twice to one neuron) is built in: the structural network has all-ones
weights. This handles the full paper net (about 10^9 edges) without building a graph.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from graphs.layers import apply_linear
from graphs.spec import Spec

__all__ = [
    "NodeFactor",
    "in_degree_maps",
    "multiplier_maps",
    "operator_vjp",
    "path_sum_factor",
    "path_sums_operator",
    "structural_forward",
]

# (layer index >= 1, node kind, in-degree tensor of that layer) -> multiplier tensor
NodeFactor = Callable[[int, str, torch.Tensor], torch.Tensor]


def structural_forward(spec: Spec, x: torch.Tensor, multipliers: list[torch.Tensor]) -> torch.Tensor:
    """The linear network whose edge into node p weighs ``multipliers[l][p]`` (l = layer of p)."""
    history = [x]
    for layer, mult in zip(spec.layers, multipliers):
        w = layer.structural_weight(x.dtype, x.device)
        history.append(apply_linear(layer, w, history, structural=True) * mult)
    return history[-1]


@torch.no_grad()
def in_degree_maps(
    spec: Spec, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """In-degree (with multiplicity) of every node of layers 1..L, each of that layer's shape.

    Layer l's structural map applied to all-ones activations counts each node's in-edges.
    """
    ones_history = [torch.ones((1, *spec.input_shape), dtype=dtype, device=device)]
    degrees = []
    for layer in spec.layers:
        out = apply_linear(layer, layer.structural_weight(dtype, device), ones_history, structural=True)
        degrees.append(out[0])
        ones_history.append(torch.ones_like(out))
    return degrees


def path_sum_factor(layer: int, kind: str, degree: torch.Tensor) -> torch.Tensor:
    """Lemma 7's factor 1/d_p (for a pooling node, d_p = a and its weight is 1/a: the same)."""
    from graphs.streaming import collapse_broadcast

    # elementwise: computed once where the degrees are a broadcast (a conv's, over channels)
    return (1.0 / collapse_broadcast(degree)).expand(degree.shape)


def multiplier_maps(
    spec: Spec, factor: NodeFactor, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """Per-layer multiplier tensors ``factor(l, kind, in_degree)`` for layers 1..L."""
    degrees = in_degree_maps(spec, dtype=dtype, device=device)
    return [factor(l, spec.node_kind(l), deg) for l, deg in enumerate(degrees, start=1)]


def operator_vjp(spec: Spec, multipliers: list[torch.Tensor], outputs: Sequence[int] | None = None) -> torch.Tensor:
    """Rows ``d o / d x`` of the multiplier network, one per output o: shape ``(len(outputs), d)``.

    The network is linear, so feeding one copy of the input per output and back-propagating
    the sum of each copy's own output gives every row in one backward pass.
    """
    if outputs is None:
        outputs = range(spec.sizes[-1])
    outputs = list(outputs)
    ref = multipliers[0]
    x = torch.zeros((len(outputs), *spec.input_shape), dtype=ref.dtype, device=ref.device, requires_grad=True)
    with torch.enable_grad():
        y = structural_forward(spec, x, [m.unsqueeze(0) for m in multipliers])
        picked = y.flatten(1)[
            torch.arange(len(outputs), device=ref.device), torch.as_tensor(outputs, device=ref.device)
        ]
        (grad,) = torch.autograd.grad(picked.sum(), x)
    return grad.flatten(1)


def path_sums_operator(
    spec: Spec, outputs: Sequence[int] | None = None, *, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``P(x, o)`` for every input x and each output o, in float64: shape ``(len(outputs), d)``."""
    mult = multiplier_maps(spec, path_sum_factor, device=device)
    return operator_vjp(spec, mult, outputs)
