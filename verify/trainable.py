"""A trainable ``nn.Module`` for any spec, made of standard PyTorch modules.

``trainable_module(spec, seed, draw)`` builds the net of ``spec`` with ``nn.Parameter`` weights
(draw ``draw`` of the He initialisation of seed ``seed``, ``verify.model.sample_params``), batch
norm as ``nn.BatchNorm1d/2d`` with running statistics, and train/eval modes, so a training
loop can train a family net; its forward equals the functional ``verify.model.forward(spec,
params, x)`` (in train mode when the spec's batch norms use batch statistics, in eval mode
when they use running ones; a test checks both).

Each layer becomes the module a user would write: ``nn.Conv2d`` (with the spec's padding mode
and dilation; a bias layer right after it becomes the convolution's own bias), ``nn.Linear``
after ``torch.flatten``, ``nn.AvgPool2d``, ``nn.MaxPool2d``, ``nn.BatchNorm2d``,
``nn.AdaptiveAvgPool2d(1)`` / ``nn.AdaptiveMaxPool2d(1)`` and a flatten for the global heads,
``+`` for a residual addition, nothing for a tap, and ``nn.ReLU``, ``nn.GELU``, ``nn.Tanh``,
``nn.LeakyReLU`` for the activations. Kinds without a PyTorch module (a masked layer, a bias
on its own, a ViT) become a ``SpecLayerModule`` that applies the layer with its weight as a
parameter. ``verify.trace`` reads such modules back into a spec, so tracing a family's module
gives back the family's spec.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from graphs.layers import (
    Add,
    AvgPool2d,
    BatchNorm,
    Bias,
    Conv2d,
    GlobalAvgPool,
    GlobalMaxPool,
    Layer,
    Linear,
    MaxPool2d,
    Tap,
)
from graphs.layers.activation import leaky_slope
from graphs.spec import Spec

__all__ = ["SpecLayerModule", "TrainableNet", "activation_module", "trainable_module"]


class SpecLayerModule(nn.Module):
    """One spec layer as a module: ``layer.apply(weight, inputs)``, the weight a parameter."""

    def __init__(self, layer: Layer, weight: torch.Tensor | None):
        super().__init__()
        self.layer = layer
        self.weight = None if weight is None else nn.Parameter(weight.clone())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layer.apply(self.weight, list(inputs))

    def extra_repr(self) -> str:
        return self.layer.describe()


def activation_module(name: str) -> nn.Module | None:
    """The standard module of an activation name (None for identity)."""
    base = name.partition(":")[0]
    if base == "identity":
        return None
    if base == "relu":
        return nn.ReLU()
    if base == "leaky_relu":
        return nn.LeakyReLU(leaky_slope(name))
    if base == "gelu":
        return nn.GELU()
    if base == "tanh":
        return nn.Tanh()
    raise ValueError(f"no module for activation {name!r}")


def _readers(spec: Spec) -> dict[int, list[int]]:
    """Activation index -> the layers reading it."""
    out: dict[int, list[int]] = {}
    for l, layer in enumerate(spec.layers, start=1):
        for j in layer.reads(l):
            out.setdefault(j, []).append(l)
    return out


def _copy(param: torch.Tensor, value: torch.Tensor) -> None:
    with torch.no_grad():
        param.copy_(value.to(dtype=param.dtype))


class TrainableNet(nn.Module):
    """The net of ``spec`` with the weights ``params`` (``verify.model.Params``); see the module docstring."""

    def __init__(
        self,
        spec: Spec,
        params: Sequence[torch.Tensor | None],
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        self._factory = {"dtype": dtype, "device": device}
        self.spec = spec
        self.steps = nn.ModuleList()
        self.acts = nn.ModuleList()
        # static plan, unrolled by torch.fx: (kind, output activation, activations read, step index or -1)
        self._plan: list[tuple[str, int, tuple[int, ...], int]] = []
        readers = _readers(spec)
        layers = spec.layers
        modes = {layer.mode for layer in layers if isinstance(layer, BatchNorm)}
        if len(modes) > 1:
            raise ValueError("a trainable module needs one batch-norm mode for the whole net (train or eval)")
        skip = set()
        for l, layer in enumerate(layers, start=1):
            if l in skip:
                continue
            w = params[l - 1]
            nxt = layers[l] if l < len(layers) else None
            # a bias read only by itself right after a conv/linear becomes that module's bias
            fuse = (
                isinstance(layer, (Conv2d, Linear))
                and isinstance(nxt, Bias)
                and layer.activation_name == "identity"
                and readers.get(l, []) == [l + 1]
            )
            out = l + 1 if fuse else l
            last = nxt if fuse else layer
            assert last is not None
            kind, module = self._module(layer, spec.shapes[l - 1], w, params[l] if fuse else None, fuse)
            index = -1
            if module is not None:
                self.steps.append(module)
                index = len(self.steps) - 1
            self._plan.append((kind, out, layer.reads(l), index))
            act = activation_module(last.activation_name)
            if act is not None:
                self.acts.append(act)
                self._plan.append(("act", out, (out,), len(self.acts) - 1))
            if fuse:
                skip.add(l + 1)
        self.train(modes != {"eval"})

    def _module(self, layer: Layer, in_shape, w, bias, fused: bool) -> tuple[str, nn.Module | None]:
        if isinstance(layer, Conv2d):
            m = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel,
                stride=layer.stride,
                padding=layer.pad,
                dilation=layer.dilation,
                bias=fused,
                padding_mode=layer.padding,  # pyright: ignore[reportArgumentType]  # one of PADDINGS
                **self._factory,
            )
            _copy(m.weight, w)
            if fused:
                assert m.bias is not None
                _copy(m.bias, bias)
            return "module", m
        if isinstance(layer, Linear):
            m = nn.Linear(layer.in_features, layer.out_features, bias=fused, **self._factory)
            _copy(m.weight, w)
            if fused:
                assert m.bias is not None
                _copy(m.bias, bias)
            return "flatten-module", m
        if isinstance(layer, AvgPool2d):
            return "module", nn.AvgPool2d(layer.window)
        if isinstance(layer, MaxPool2d):
            return "module", nn.MaxPool2d(layer.window, layer.step, layer.padding)
        if isinstance(layer, BatchNorm):
            return "module", _batchnorm(layer, w, in_shape, self._factory)
        if isinstance(layer, GlobalAvgPool):
            return "pool-flatten", nn.AdaptiveAvgPool2d(1)
        if isinstance(layer, GlobalMaxPool):
            return "pool-flatten", nn.AdaptiveMaxPool2d(1)
        if isinstance(layer, Add):
            return "add", None
        if isinstance(layer, Tap):
            return "tap", None
        weight = None if w is None else w.detach().to(**self._factory)
        return "module", SpecLayerModule(layer, weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts: dict[int, Any] = {0: x}
        for kind, out, reads, index in self._plan:
            if kind == "act":
                acts[out] = self.acts[index](acts[out])
            elif kind == "add":
                acts[out] = acts[reads[0]] + acts[reads[1]]
            elif kind == "tap":
                acts[out] = acts[reads[0]]
            elif kind == "flatten-module":
                acts[out] = self.steps[index](torch.flatten(acts[reads[0]], 1))
            elif kind == "pool-flatten":
                acts[out] = torch.flatten(self.steps[index](acts[reads[0]]), 1)
            else:
                acts[out] = self.steps[index](*[acts[j] for j in reads])
        return acts[len(self.spec.layers)]


def _batchnorm(layer: BatchNorm, w: torch.Tensor, in_shape, factory: dict) -> nn.Module:
    cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
    m = cls(layer.channels, eps=layer.eps, **factory)
    gamma, beta, mean, var = w
    _copy(m.weight, gamma)
    _copy(m.bias, beta)
    m.running_mean.copy_(mean.to(m.running_mean.dtype))  # type: ignore[union-attr]
    m.running_var.copy_(var.to(m.running_var.dtype))  # type: ignore[union-attr]
    return m


def trainable_module(
    spec: Spec, seed: int = 0, draw: int = 0, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> TrainableNet:
    """The net of ``spec`` as a trainable module, initialised with weight draw ``draw`` of seed ``seed``."""
    from verify.model import sample_params

    params = sample_params(spec, seed, draw, dtype=dtype)
    return TrainableNet(spec, params, dtype=dtype, device=device)
