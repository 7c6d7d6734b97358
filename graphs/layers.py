"""The linear part of each spec layer in torch: once with real weights, once with all-ones weights.

Both the torch module (``verify.model``) and the operator form of the exact sums
(``graphs.operator``) go through ``apply_linear`` so they share one definition of padding,
stride and flattening. The DAG (``graphs.dag``) is built independently, by explicit index
arithmetic, and a test checks the two agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from graphs.spec import AvgPool2d, Conv2d, Layer, Linear, MaskedLinear, Spec

__all__ = [
    "apply_linear",
    "layer_input",
    "pad_input",
    "pad_input_adjoint",
    "structural_forward",
    "structural_weight",
    "weight_shape",
]


def weight_shape(layer: Layer) -> tuple[int, ...] | None:
    """Shape of the random weight of ``layer``; ``None`` for pooling (constant weights)."""
    if isinstance(layer, Conv2d):
        return (layer.out_channels, layer.in_channels, layer.kernel, layer.kernel)
    if isinstance(layer, Linear):
        return (layer.out_features, layer.in_features)
    if isinstance(layer, MaskedLinear):
        return (layer.out_features, layer.in_features)
    return None


def structural_weight(layer: Layer, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """All-ones weights (masked for ``MaskedLinear``): the layer then counts edges with multiplicity."""
    shape = weight_shape(layer)
    if shape is None:
        return None
    if isinstance(layer, MaskedLinear):
        return torch.as_tensor(layer.mask, dtype=dtype, device=device)
    return torch.ones(shape, dtype=dtype, device=device)


def _circular_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    # Zero-pad, then copy the wrapped strips: about 3x faster than F.pad(mode="circular") on
    # CPU, whose backward is slower still; same values (the DAG-vs-Jacobian test checks).
    out = F.pad(x, (p, p, p, p))
    out[..., :p, p:-p] = x[..., -p:, :]
    out[..., -p:, p:-p] = x[..., :p, :]
    out[..., :p] = out[..., -2 * p : -p]
    out[..., -p:] = out[..., p : 2 * p]
    return out


def _circular_pad_adjoint(g: torch.Tensor, p: int) -> torch.Tensor:
    # Each padded strip is a copy of the opposite border: its gradient adds back there.
    # Columns first (they hold the corners), then rows.
    g = g.clone()
    g[..., -2 * p : -p] += g[..., :p]
    g[..., p : 2 * p] += g[..., -p:]
    g[..., -2 * p : -p, :] += g[..., :p, :]
    g[..., p : 2 * p, :] += g[..., -p:, :]
    return g[..., p:-p, p:-p]


class _CircularPad(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, p: int) -> torch.Tensor:
        return _circular_pad(x, p)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.p = inputs[1]

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return _circular_pad_adjoint(g, ctx.p), None


def pad_input(layer: Conv2d, h: torch.Tensor) -> torch.Tensor:
    """``h`` padded by ``layer.pad`` in ``layer.padding`` mode (circular or reflect; not zeros,
    which the convolution does itself)."""
    if layer.pad == 0:
        return h
    if layer.padding == "circular":
        return _CircularPad.apply(h, layer.pad)
    p = layer.pad
    return F.pad(h, (p, p, p, p), mode=layer.padding)


def pad_input_adjoint(layer: Conv2d, g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The vector-Jacobian product of ``pad_input`` at an input shaped like ``like``."""
    p = layer.pad
    if p == 0:
        return g
    if layer.padding == "circular":
        return _circular_pad_adjoint(g, p)
    return torch.ops.aten.reflection_pad2d_backward(g, like, [p, p, p, p])


def layer_input(layer: Layer, history: list[torch.Tensor]) -> torch.Tensor:
    """What ``layer`` reads: the previous activation, or for a masked layer all earlier ones."""
    if isinstance(layer, MaskedLinear):
        return torch.cat([h.flatten(1) for h in history], dim=1)
    return history[-1]


def apply_linear(layer: Layer, weight: torch.Tensor | None, history: list[torch.Tensor], *, structural: bool = False) -> torch.Tensor:
    """Pre-activation of ``layer`` for a batch; ``history`` holds the input and earlier outputs.

    With ``structural=True`` pooling sums instead of averaging, so every edge weighs 1.
    """
    h = layer_input(layer, history)
    if isinstance(layer, Conv2d):
        if layer.padding == "zeros":
            return F.conv2d(h, weight, stride=layer.stride, padding=layer.pad)
        return F.conv2d(pad_input(layer, h), weight, stride=layer.stride)
    if isinstance(layer, AvgPool2d):
        out = F.avg_pool2d(h, layer.window)
        return out * layer.area if structural else out
    if isinstance(layer, Linear):
        return F.linear(h.flatten(1), weight)
    if isinstance(layer, MaskedLinear):
        return F.linear(h, weight)
    raise TypeError(f"unknown layer {type(layer).__name__}")  # pragma: no cover


def structural_forward(spec: Spec, x: torch.Tensor, multipliers: list[torch.Tensor]) -> torch.Tensor:
    """The linear network whose edge into node p weighs ``multipliers[l][p]`` (l = layer of p)."""
    history = [x]
    for layer, mult in zip(spec.layers, multipliers):
        w = structural_weight(layer, x.dtype, x.device)
        history.append(apply_linear(layer, w, history, structural=True) * mult)
    return history[-1]

