"""The DAG view and the torch view of a spec describe the same network."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

from graphs.dag import to_dag
from graphs.layers import apply_linear
from graphs.operator import in_degree_maps
from graphs.spec import build_spec
from tests.mc import assert_mc_close
from verify.model import build_module, forward, sample_params

SMALL_SPECS = [
    ("dense", 7, {"widths": (5, 4), "num_classes": 3}),
    ("random-dag", 9, {"hidden": (6, 5, 4), "max_in_degree": 4, "skip_prob": 0.5, "seed": 3, "num_classes": 3}),
    *[
        (fam, n, {"channels": 2, "strides": (1, 2, 2), "padding": pad, "in_channels": 2, "num_classes": 3})
        for fam in ("strided-cnn", "avgpool-cnn")
        for pad in ("zeros", "circular", "reflect")
        for n in (4, 5)
        if not (fam == "avgpool-cnn" and n % 4)
    ],
    (
        "strided-cnn",
        6,
        {"channels": 2, "strides": (2, 3), "kernel": 5, "padding": "reflect", "in_channels": 1, "num_classes": 2},
    ),
    (
        "strided-cnn",
        5,
        {"channels": 2, "strides": (1, 2), "kernel": 5, "padding": "circular", "in_channels": 1, "num_classes": 2},
    ),
    (
        "strided-cnn",
        3,
        {"channels": 2, "strides": (1, 2), "kernel": 1, "padding": "circular", "in_channels": 2, "num_classes": 2},
    ),
]


def _ids(case):
    fam, n, opts = case
    return f"{fam}-{n}-{opts.get('padding', '')}"


@pytest.mark.parametrize("case", SMALL_SPECS, ids=[_ids(c) for c in SMALL_SPECS])
def test_dag_edges_are_the_layer_jacobians(case):
    """With every weight entry set to a distinct integer, the Jacobian of layer l's linear map
    at (target, source) is exactly the sum of the params of the DAG's parallel edges there:
    this checks the edge set, the multiplicities and which shared parameter each edge uses."""
    fam, n, opts = case
    spec = build_spec(fam, n, **opts)
    g = to_dag(spec)
    sizes = spec.sizes
    shapes = spec.shapes
    for l, layer in enumerate(spec.layers, start=1):
        shape = layer.weight_shape()
        if shape is None:
            w = None
            param_value = None
        else:
            w = torch.arange(1, int(np.prod(shape)) + 1, dtype=torch.float64).reshape(shape)
            if hasattr(layer, "mask"):
                w = w * torch.as_tensor(layer.mask, dtype=torch.float64)
            param_value = w
        expected = defaultdict(float)
        for u, v, data in g.in_edges([(l, i) for i in range(sizes[l])], data=True):
            value = float(data["value"]) if data["weight_kind"] == "pool" else float(param_value[data["param"][1:]])
            expected[(v[1], u)] += value
        # Jacobian of layer l with respect to every earlier activation it may read.
        history = [torch.zeros((1, *s), dtype=torch.float64, requires_grad=True) for s in shapes[:l]]
        out = apply_linear(layer, w, history).flatten()
        actual = {}
        for t in range(sizes[l]):
            grads = torch.autograd.grad(out[t], history, retain_graph=True, allow_unused=True)
            for src_layer, gr in enumerate(grads):
                if gr is None:
                    continue
                for s in torch.nonzero(gr.flatten()).flatten().tolist():
                    actual[(t, (src_layer, s))] = float(gr.flatten()[s])
        assert actual == dict(expected), f"layer {l} ({type(layer).__name__})"


@pytest.mark.parametrize("case", SMALL_SPECS, ids=[_ids(c) for c in SMALL_SPECS])
def test_in_degree_maps_match_dag(case):
    fam, n, opts = case
    spec = build_spec(fam, n, **opts)
    g = to_dag(spec)
    for l, deg in enumerate(in_degree_maps(spec), start=1):
        dag_deg = [g.in_degree((l, i)) for i in range(spec.sizes[l])]
        assert deg.flatten().tolist() == [float(x) for x in dag_deg]


def test_module_matches_functional_forward_and_is_seeded():
    spec = build_spec("strided-cnn", 8, channels=3, strides=(1, 2), padding="reflect")
    net = build_module(spec, seed=5, draw=2, dtype=torch.float64)
    again = build_module(spec, seed=5, draw=2, dtype=torch.float64)
    other = build_module(spec, seed=5, draw=3, dtype=torch.float64)
    x = torch.randn(4, *spec.input_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(net(x), forward(spec, net.params, x))
    assert torch.equal(net(x), again(x))
    assert not torch.equal(net(x), other(x))
    assert net(x).shape == (4, 10)


@pytest.mark.parametrize(
    ("family", "dim", "opts"),
    [
        ("dense", 40, {"widths": (300,)}),
        ("strided-cnn", 6, {"channels": 32, "strides": (1, 2), "padding": "zeros"}),
        ("random-dag", 30, {"hidden": (200, 200), "max_in_degree": 6}),
    ],
)
def test_initialisation_variance_is_two_over_nominal_fan_in(family, dim, opts):
    """He: every weight has mean 0 and variance 2 / nominal_fan_in (per neuron for masked layers)."""
    spec = build_spec(family, dim, **opts)
    params = sample_params(spec, seed=11, draw=0, dtype=torch.float64)
    for layer, w in zip(spec.layers, params):
        fan = layer.fan_in()
        if w is None:
            assert fan is None
            continue
        if hasattr(layer, "mask"):
            on = torch.as_tensor(layer.mask, dtype=torch.bool)
            scaled = (w * torch.sqrt(torch.as_tensor(fan, dtype=torch.float64) / 2).unsqueeze(1))[on]
        else:
            scaled = w.flatten() * (fan / 2) ** 0.5
        assert_mc_close(scaled.numpy(), 0.0, what=f"{type(layer).__name__} mean")
        assert_mc_close((scaled**2).numpy(), 1.0, what=f"{type(layer).__name__} variance x fan_in / 2")
