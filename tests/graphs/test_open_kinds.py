"""The layer kinds beyond the theorems' four: residual addition, tap, bias, dilation, max pooling,
batch norm, global pooling heads and activations other than ReLU.

For every linear kind the DAG's edges are the torch Jacobian (as ``test_views``); for the
data-dependent kinds (max pooling, batch statistics) the Jacobian's support lies inside the
DAG's edges; each kind declares what it breaks, and Eq. 13 refuses exactly where it has no value.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest
import torch

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.errors import InputError, SpecError
from graphs.hypotheses import check_h2
from graphs.layers import (
    Add,
    AvgPool2d,
    BatchNorm,
    Bias,
    Conv2d,
    GlobalAvgPool,
    GlobalMaxPool,
    Linear,
    MaxPool2d,
    Tap,
    canonical_activation,
    gate_second_moment,
    layer_from_dict,
)
from graphs.moments import moment_obstacles, predicted_logit_grad_sq, second_moment_dp, second_moment_map
from graphs.operator import in_degree_maps
from graphs.pathsums import lemma7_total, operator_path_sums, path_sums_dp
from graphs.spec import Spec, build_spec
from verify.model import forward, sample_params

# ------------------------------------------------------------------ small nets of every new kind

LINEAR_SPECS = {
    "resnet-identity-and-projection": build_spec(
        "resnet", 5, width=2, blocks=(1, 1), stage_strides=(1, 2), in_channels=2, num_classes=3
    ),
    "resnet-flatten-circular": build_spec(
        "resnet", 4, width=2, blocks=(1,), stage_strides=(2,), head="flatten", padding="circular", in_channels=1
    ),
    "resnet-bn-eval": build_spec(
        "resnet", 4, width=2, blocks=(1,), stage_strides=(1,), bn="on", bn_mode="eval", in_channels=1, num_classes=2
    ),
    "dilated-convs": Spec(
        "custom",
        7,
        (2, 7, 7),
        (
            Conv2d(2, 2, 3, 1, "zeros", dilation=2),
            Conv2d(2, 2, 3, 2, "circular", dilation=3),
            Conv2d(2, 1, 3, 1, "reflect", relu=False, dilation=1),
            Bias(1),
            Linear(16, 2, relu=False),
        ),
    ),
    "dilated-reflect": Spec("custom", 8, (1, 8, 8), (Conv2d(1, 2, 3, 1, "reflect", dilation=3), GlobalAvgPool())),
    "tap-activation": Spec(
        "custom", 4, (4,), (Linear(4, 3, relu=False), Tap(1, activation="leaky_relu"), Add(2), Linear(3, 2))
    ),
}

NONLINEAR_SPECS = {
    "paper-net-max-bn-eval": build_spec(
        "paper-net", 16, channels=1, dilation_base=16, bn_mode="eval", in_channels=1, num_classes=2
    ),
    "bn-train-image": Spec(
        "custom",
        4,
        (1, 4, 4),
        (Conv2d(1, 2, relu=False), BatchNorm(2, relu=True), MaxPool2d(2), GlobalAvgPool(), Linear(2, 2, relu=False)),
    ),
    "maxpool-overlapping": Spec(
        "custom", 6, (2, 6, 6), (Conv2d(2, 2), MaxPool2d(3, 2, 1), GlobalMaxPool(), Linear(2, 2, relu=False))
    ),
    "bn-train-vector": Spec("custom", 3, (3,), (Linear(3, 4, relu=False), BatchNorm(4, relu=True), Linear(4, 2))),
}


def _random_point(spec: Spec, gen: torch.Generator) -> list[torch.Tensor]:
    """Activations 0..L-1 of one random input through He weights (where the nonlinear maps are evaluated)."""
    params = sample_params(spec, 0, 0, dtype=torch.float64)
    history = [torch.randn((1, *spec.input_shape), generator=gen, dtype=torch.float64)]
    for l, (layer, w) in enumerate(zip(spec.layers, params), start=1):
        history.append(layer.apply(w, [history[j] for j in layer.reads(l)]))
    return history


def _layer_jacobian(spec: Spec, l: int, history: list[torch.Tensor], weight) -> dict:
    """``{(target, (source layer, source)): d out_t / d in_s}`` of layer l's map (pre-activation)."""
    layer = spec.layers[l - 1]
    inputs = [h.detach().clone().requires_grad_(True) for h in history[:l]]
    out = layer.apply(weight, [inputs[j] for j in layer.reads(l)]).flatten()
    jac = {}
    for t in range(out.numel()):
        grads = torch.autograd.grad(out[t], inputs, retain_graph=True, allow_unused=True)
        for j, gr in enumerate(grads):
            if gr is None:
                continue
            flat = gr.flatten()
            for s in torch.nonzero(flat).flatten().tolist():
                jac[(t, (j, s))] = float(flat[s])
    return jac


@pytest.mark.parametrize("name", sorted(LINEAR_SPECS))
def test_dag_edges_are_the_jacobians_of_the_new_linear_kinds(name):
    """Random weights set to distinct integers, constant weights to the DAG's value: the Jacobian of
    each layer equals the sum of its parallel DAG edges (edge set, multiplicity, parameter)."""
    spec = LINEAR_SPECS[name]
    g = to_dag(spec)
    params = sample_params(spec, 0, 0, dtype=torch.float64)
    history = _random_point(spec, torch.Generator().manual_seed(1))
    for l, layer in enumerate(spec.layers, start=1):
        w = params[l - 1]
        if w is not None and not isinstance(layer, (BatchNorm, Bias)):
            w = torch.arange(1, w.numel() + 1, dtype=torch.float64).reshape(w.shape)
        expected: dict = defaultdict(float)
        for u, v, data in g.in_edges([(l, i) for i in range(spec.sizes[l])], data=True):
            if data["weight_kind"] == "pool":
                value = float(data["value"])
            else:
                assert data["weight_kind"] == "random"
                assert w is not None
                value = float(w[data["param"][1:]])
            expected[(v[1], u)] += value
        actual = _layer_jacobian(spec, l, history, w)
        assert actual.keys() == expected.keys(), f"layer {l} ({layer.describe()})"
        for key, value in expected.items():
            assert actual[key] == pytest.approx(value, rel=1e-12), (l, key)


@pytest.mark.parametrize("name", sorted(NONLINEAR_SPECS))
def test_jacobian_support_of_data_dependent_kinds_lies_in_the_dag(name):
    """Max pooling: one edge per output carries the derivative 1 (the argmax), inside the window's
    edges; batch statistics: the Jacobian is dense within a channel, which the DAG's edges cover."""
    spec = NONLINEAR_SPECS[name]
    g = to_dag(spec)
    params = sample_params(spec, 0, 0, dtype=torch.float64)
    # two samples: batch statistics need more than one value per channel
    gen = torch.Generator().manual_seed(4)
    x = torch.randn((2, *spec.input_shape), generator=gen, dtype=torch.float64)
    history = [x]
    for l, (layer, w) in enumerate(zip(spec.layers, params), start=1):
        # pre-activations: no ReLU zeros, so a maximum has no ties
        history.append(layer.apply(w, [history[j] for j in layer.reads(l)]))
    for l, layer in enumerate(spec.layers, start=1):
        kinds = {d["weight_kind"] for _, _, d in g.in_edges([(l, i) for i in range(spec.sizes[l])], data=True)}
        if not kinds & {"max", "batch"}:
            continue
        edges = {(v[1], u) for u, v in g.in_edges([(l, i) for i in range(spec.sizes[l])])}
        inputs = history[l - 1].detach().clone().requires_grad_(True)
        out = layer.apply(params[l - 1], [inputs])[0].flatten()  # sample 0's outputs
        for t in range(out.numel()):
            (gr,) = torch.autograd.grad(out[t], inputs, retain_graph=True)
            support = {(t, (l - 1, s)) for s in torch.nonzero(gr[0].flatten()).flatten().tolist()}
            assert support <= edges, f"layer {l}: Jacobian entries outside the DAG"
            if kinds == {"max"}:
                # the argmax passes the derivative 1 (shared equally by ties: overlapping windows
                # repeat a maximum, so a global max over them can tie)
                values = gr[0].flatten()
                assert (values >= 0).all()
                assert values.sum() == pytest.approx(1.0, rel=1e-12)
            else:
                # batch statistics: every input of the channel moves the output
                assert len(support) == sum(1 for e in edges if e[0] == t)
        assert torch.equal(
            in_degree_maps(spec)[l - 1].flatten(),
            torch.tensor([float(g.in_degree((l, i))) for i in range(spec.sizes[l])], dtype=torch.float64),
        )


@pytest.mark.parametrize("name", sorted({**LINEAR_SPECS, **NONLINEAR_SPECS}))
def test_in_degrees_path_sums_and_h2_on_the_new_kinds(name):
    spec = {**LINEAR_SPECS, **NONLINEAR_SPECS}[name]
    g = to_dag(spec)
    for l, deg in enumerate(in_degree_maps(spec), start=1):
        assert deg.flatten().tolist() == [float(g.in_degree((l, i))) for i in range(spec.sizes[l])]
    P = operator_path_sums(spec)
    xs = input_nodes(g)
    for o in output_nodes(g):
        assert lemma7_total(g, o) == 1
        dp = path_sums_dp(g, o, exact=True)
        assert [float(dp[x]) for x in xs] == pytest.approx(P[o[1]].tolist(), rel=1e-12, abs=1e-300)
    assert check_h2(g)


def test_skip_paths_are_counted():
    """One residual block on a 1-d chain: paths through the block and around it both reach the logit."""
    spec = Spec("custom", 1, (1,), (Linear(1, 1), Linear(1, 1), Add(3), Linear(1, 1, relu=False)))
    g = to_dag(spec)
    # Add(3) at layer 3 reads activations 2 (the branch) and 0 (the input itself)
    assert {u for u, _ in g.in_edges((3, 0))} == {(2, 0), (0, 0)}
    dp = path_sums_dp(g, (4, 0), exact=True)
    # two paths: x-l1-l2-add-out (degrees 1,1,2,1) and x-add-out (2,1): 1/2 + 1/2
    assert dp[(0, 0)] == 1


# ------------------------------------------------------------------ Eq. 13 on the new kinds


def test_eq13_dp_equals_operator_form_on_a_resnet():
    spec = LINEAR_SPECS["resnet-identity-and-projection"]
    g = to_dag(spec)
    mmap = second_moment_map(spec, variance="init")
    for k, o in enumerate(output_nodes(g)):
        dp = second_moment_dp(g, o, spec, variance="init", exact=True)
        for j, x in enumerate(input_nodes(g)):
            assert isinstance(dp[x], Fraction)
            assert math.isclose(float(dp[x]), float(mmap[k, j]), rel_tol=1e-12, abs_tol=1e-300)


def test_eq13_of_a_dense_residual_chain_in_closed_form():
    """Summed over the inputs: a hidden ReLU layer keeps the stream's total S (factor 1/d_p on d_p
    in-edges), the branch's last layer (no ReLU) doubles it, the addition adds the stream: 3 S per
    block; the linear logit doubles: E||d_x f||^2 = 2 * 3^blocks whatever the widths."""
    for blocks in (1, 2, 3):
        layers = [Linear(6, 5)]
        for _ in range(blocks):
            layers += [Linear(5, 5), Linear(5, 5, relu=False), Add(3)]
        layers.append(Linear(5, 3, relu=False))
        spec = Spec("custom", 6, (6,), tuple(layers))
        assert predicted_logit_grad_sq(spec) == pytest.approx(2.0 * 3**blocks, rel=1e-12)


def test_leaky_relu_gate_is_one_plus_slope_squared_over_two():
    a = 0.2
    plain = Spec("custom", 4, (4,), (Linear(4, 5, relu=False), Linear(5, 2, relu=False)))
    leaky = Spec("custom", 4, (4,), (Linear(4, 5, activation=f"leaky_relu:{a}"), Linear(5, 2, relu=False)))
    assert gate_second_moment(f"leaky_relu:{a}") == pytest.approx((1 + a * a) / 2)
    assert predicted_logit_grad_sq(leaky) == pytest.approx(predicted_logit_grad_sq(plain) * (1 + a * a) / 2)
    g = to_dag(leaky)
    exact = second_moment_dp(g, output_nodes(g)[0], leaky, exact=False)
    assert sum(exact.values()) == pytest.approx(predicted_logit_grad_sq(leaky), rel=1e-12)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (NONLINEAR_SPECS["bn-train-image"], "batch statistics"),
        (NONLINEAR_SPECS["maxpool-overlapping"], "max pooling"),
        (Spec("custom", 4, (4,), (Linear(4, 5, activation="gelu"), Linear(5, 2, relu=False))), "gelu"),
        (Spec("custom", 4, (4,), (Linear(4, 5, activation="tanh"), Linear(5, 2, relu=False))), "tanh"),
    ],
)
def test_eq13_refuses_where_it_has_no_value(spec, words):
    assert any(words in line for line in moment_obstacles(spec))
    with pytest.raises(InputError, match=words):
        second_moment_map(spec)
    g = to_dag(spec)
    with pytest.raises(InputError):
        second_moment_dp(g, output_nodes(g)[0], spec)


def test_eq13_has_a_value_on_linear_kinds():
    for name, spec in LINEAR_SPECS.items():
        assert moment_obstacles(spec) == (), name
    # batch norm in eval mode at the initial statistics scales by 1/sqrt(1 + eps) per layer
    bn = LINEAR_SPECS["resnet-bn-eval"]
    plain = build_spec("resnet", 4, width=2, blocks=(1,), stage_strides=(1,), in_channels=1, num_classes=2)
    ratio = predicted_logit_grad_sq(bn) / predicted_logit_grad_sq(plain)
    assert ratio < 1
    assert ratio == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------ what each kind declares


def test_hypotheses_each_kind_breaks_by_construction():
    assert MaxPool2d(2).hypotheses_broken() == ("H1",)
    assert GlobalMaxPool().hypotheses_broken() == ("H1",)
    assert BatchNorm(3).hypotheses_broken() == ("H1", "H4")
    assert BatchNorm(3, "eval").hypotheses_broken() == ()
    assert Conv2d(2, 2, activation="gelu").hypotheses_broken() == ("H1",)
    assert Linear(2, 2, activation="tanh").hypotheses_broken() == ("H1",)
    assert Linear(2, 2, activation="leaky_relu").hypotheses_broken() == ("H1",)
    assert Add(2).hypotheses_broken() == ()
    assert Add(2, relu=True).hypotheses_broken() == ("H1",)
    assert "branch + skip" in Add(2, relu=True).hypothesis_notes()["H1"]
    for layer in (Tap(1), Bias(2), GlobalAvgPool(), AvgPool2d(2), Conv2d(2, 2, dilation=2), Linear(2, 2)):
        assert layer.hypotheses_broken() == (), layer
    assert Conv2d(2, 2, padding="reflect", dilation=2).hypotheses_broken() == ("H5",)
    assert "argmax" in MaxPool2d(2).hypothesis_notes()["H1"]
    assert "magnitude" in Linear(2, 2, activation="gelu").hypothesis_notes()["H1"]


def test_activation_names_and_the_old_relu_flag():
    assert Conv2d(2, 3).activation == "relu"
    assert Conv2d(2, 3).relu
    assert Conv2d(2, 3, relu=False).activation == "identity"
    assert Conv2d(2, 3, activation="gelu").relu is False
    assert Conv2d(2, 3, activation="relu") == Conv2d(2, 3)
    assert canonical_activation("leaky_relu:0.01") == "leaky_relu"
    assert canonical_activation("leaky_relu:0.2") == "leaky_relu:0.2"
    for bad in ("swish", "gelu:2", "leaky_relu:x"):
        with pytest.raises(SpecError):
            Linear(2, 2, activation=bad)


@pytest.mark.parametrize(
    "layer",
    [
        Add(3, relu=True),
        Tap(2, activation="tanh"),
        Bias(4),
        MaxPool2d(3, 2, 1, relu=True),
        MaxPool2d(2),
        BatchNorm(5, "eval", 1e-3, activation="gelu"),
        GlobalAvgPool(),
        GlobalMaxPool(relu=True),
        Conv2d(3, 4, 3, 2, "reflect", dilation=2, activation="leaky_relu:0.1"),
        Linear(3, 2, activation="tanh"),
    ],
    ids=lambda layer: layer.describe(),
)
def test_new_kinds_round_trip_through_plain_data(layer):
    data = layer.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = layer_from_dict(data)
    assert again == layer
    assert again.to_dict() == data


def test_fingerprints_of_the_old_families_are_unchanged():
    """Plain data gains keys (dilation, activation) only where they differ from the old default."""
    data = build_spec("strided-cnn", 8, channels=2, strides=(1, 2)).to_dict()
    assert data["layers"][0] == {
        "kind": "conv2d",
        "in_channels": 3,
        "out_channels": 2,
        "kernel": 3,
        "stride": 1,
        "padding": "zeros",
        "relu": True,
    }
    assert build_spec("dense", 4, widths=(3,)).to_dict()["layers"][-1] == {
        "kind": "linear",
        "in_features": 3,
        "out_features": 10,
        "relu": False,
    }


def test_dilation_keeps_the_size_and_the_parameter_count():
    for dil in (1, 2, 3):
        layer = Conv2d(2, 4, 3, 1, "reflect", dilation=dil)
        assert layer.output_shape([(2, 9, 9)], 1) == (4, 9, 9)
        assert layer.weight_shape() == (4, 2, 3, 3)
        assert layer.fan_in() == 18
    with pytest.raises(SpecError, match="reflect: layer 1 pads by 3"):
        Conv2d(2, 4, 3, 1, "reflect", dilation=3).output_shape([(2, 3, 3)], 1)


@pytest.mark.parametrize(
    ("layers", "shape", "words"),
    [
        ((Linear(4, 3), Add(2)), (4,), "shapes"),
        ((Linear(4, 3), Add(1)), (4,), "back"),
        ((Linear(4, 3), Bias(4)), (4,), "bias of 4"),
        ((BatchNorm(3),), (4,), "batch norm of 3"),
        ((BatchNorm(4, "test"),), (4,), "mode"),
        ((GlobalAvgPool(),), (4,), "image"),
        ((MaxPool2d(5),), (1, 4, 4), "does not fit"),
    ],
)
def test_bad_layers_are_spec_errors(layers, shape, words):
    with pytest.raises(SpecError, match=words):
        _ = Spec("bad", 4, shape, layers).shapes


def test_functional_forward_of_the_new_kinds_in_float64():
    """forward() against the same net written with torch's own functions."""
    spec = Spec(
        "custom",
        6,
        (2, 6, 6),
        (
            Conv2d(2, 3, 3, 1, "reflect", relu=False, dilation=2),
            Bias(3),
            MaxPool2d(2, activation="gelu"),
            BatchNorm(3, relu=True),
            Tap(3),
            Conv2d(3, 3, 1, 2, relu=False),
            Add(3, activation="tanh"),
            GlobalAvgPool(),
            Linear(3, 2, relu=False),
        ),
    )
    gen = torch.Generator().manual_seed(5)
    params = sample_params(spec, 0, 0, dtype=torch.float64)
    params[1] = torch.randn(3, generator=gen, dtype=torch.float64)  # a non-zero bias
    x = torch.randn((4, 2, 6, 6), generator=gen, dtype=torch.float64)
    F = torch.nn.functional
    w = params
    h1 = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), w[0], dilation=2) + w[1].view(1, 3, 1, 1)
    h2 = F.gelu(F.max_pool2d(h1, 2))
    h3 = torch.relu(F.batch_norm(h2, None, None, training=True, eps=1e-5))
    skip = F.conv2d(h1, w[5], stride=2)
    h4 = torch.tanh(h3 + skip)
    logits = F.linear(h4.mean(dim=(2, 3)), w[8])
    torch.testing.assert_close(forward(spec, params, x), logits, rtol=1e-12, atol=1e-12)
    assert np.isfinite(forward(spec, params, x).numpy()).all()


# ------------------------------------------------------------------ hand-written adjoints


def _adjoint_cases():
    cases = [
        (Conv2d(2, 3, 3, stride, padding, dilation=dil), (2, 9, 8))
        for padding in ("zeros", "circular", "reflect")
        for stride in (1, 2)
        for dil in (2, 3)
    ]
    cases += [(Tap(1), (3, 4, 4)), (Bias(3), (3, 4, 5)), (Bias(4), (4,)), (GlobalAvgPool(), (3, 5, 4))]
    cases += [(BatchNorm(3, "eval"), (3, 4, 4)), (BatchNorm(4, "eval"), (4,))]
    return cases


@pytest.mark.parametrize("case", _adjoint_cases(), ids=lambda c: f"{c[0].describe()}-{'x'.join(map(str, c[1]))}")
def test_input_vjp_of_the_new_kinds_is_the_autograd_vjp(case):
    layer, in_shape = case
    out_shape = layer.output_shape([in_shape], 1)
    gen = torch.Generator().manual_seed(7)
    shape = layer.weight_shape()
    w = None if shape is None else torch.randn(shape, generator=gen, dtype=torch.float64)
    if isinstance(layer, BatchNorm):
        assert w is not None
        w[3] = w[3].abs() + 0.5  # a variance
    x = torch.randn((2, *in_shape), generator=gen, dtype=torch.float64, requires_grad=True)
    cot = torch.randn((2, *out_shape), generator=gen, dtype=torch.float64)
    (expected,) = torch.autograd.grad(layer.apply(w, [x]), x, grad_outputs=cot)
    assert layer.has_input_vjp()
    torch.testing.assert_close(layer.input_vjp(w, cot, (2, *in_shape)), expected, rtol=1e-12, atol=1e-12)


def test_kinds_without_an_adjoint_say_so():
    for layer in (MaxPool2d(2), GlobalMaxPool(), BatchNorm(3), Add(2), Tap(2)):
        assert not (layer.has_input_vjp() and layer.reads(5) == (4,)), layer
