"""The layer protocol: the registry, each kind's adjoint against autograd, spec hashes, and a
new kind added from this file alone."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, Iterator, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.errors import SpecError
from graphs.layers import (
    LAYER_KINDS,
    PADDINGS,
    AvgPool2d,
    Conv2d,
    Edge,
    Layer,
    Linear,
    MaskedLinear,
    MiscountedLinear,
    Shape,
    layer_from_dict,
    register_layer,
)
from graphs.moments import second_moment_dp, second_moment_map
from graphs.pathsums import lemma7_total, operator_path_sums, path_sums_dp
from graphs.spec import Spec, build_spec
from verify.engine import choose_backend, manual_gradients, supports_manual
from verify.model import forward, sample_params
from verify.sampling import input_gradients, sample_inputs, sample_labels


@pytest.fixture
def registry():
    """``LAYER_KINDS`` as the test found it, restored afterwards (a toy kind must not leak)."""
    saved = dict(LAYER_KINDS)
    yield LAYER_KINDS
    LAYER_KINDS.clear()
    LAYER_KINDS.update(saved)


def test_registry_lists_the_built_in_kinds():
    # the four kinds of the families, verify calibrate's planted miscounted dense layer, the open-architecture kinds
    original = {
        "conv2d": Conv2d,
        "avgpool2d": AvgPool2d,
        "linear": Linear,
        "masked-linear": MaskedLinear,
        "miscounted-linear": MiscountedLinear,
    }
    assert original.items() <= LAYER_KINDS.items()
    assert {
        "add",
        "tap",
        "bias",
        "maxpool2d",
        "batchnorm",
        "global-avgpool",
        "global-maxpool",
    } <= set(LAYER_KINDS)
    for kind, cls in LAYER_KINDS.items():
        assert issubclass(cls, Layer)
        assert cls.kind == kind


def test_a_taken_kind_name_is_refused(registry):
    @dataclass(frozen=True)
    class Impostor(Linear):
        kind: ClassVar[str] = "linear"

    with pytest.raises(ValueError, match="taken"):
        register_layer(Impostor)
    assert registry["linear"] is Linear


# ------------------------------------------------------------------ adjoints


def _vjp_cases():
    cases = [
        (Conv2d(2, 3, kernel, stride, padding, relu=True), (2, 7, 6))
        for padding in PADDINGS
        for kernel in (1, 3, 5)
        for stride in (1, 2, 3)
    ]
    cases += [(AvgPool2d(w), (3, 6, 6)) for w in (1, 2, 3)]
    cases += [(Linear(12, 5), (12,)), (Linear(2 * 3 * 4, 5), (2, 3, 4))]
    return cases


def _case_id(case):
    layer, shape = case
    return f"{layer.describe()}-{'x'.join(map(str, shape))}"


@pytest.mark.parametrize("case", _vjp_cases(), ids=[_case_id(c) for c in _vjp_cases()])
def test_input_vjp_is_the_autograd_vjp_of_apply(case):
    layer, in_shape = case
    out_shape = layer.output_shape([in_shape], 1)
    gen = torch.Generator().manual_seed(7)
    shape = layer.weight_shape()
    w = None if shape is None else torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.randn((2, *in_shape), generator=gen, dtype=torch.float64, requires_grad=True)
    cot = torch.randn((2, *out_shape), generator=gen, dtype=torch.float64)
    out = layer.apply(w, [x])
    assert out.shape == (2, *out_shape)
    (expected,) = torch.autograd.grad(out, x, grad_outputs=cot)
    assert layer.has_input_vjp()
    got = layer.input_vjp(w, cot, (2, *in_shape))
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_circular_padding_matches_torch_reference(kernel, stride):
    """The fast circular pad (and its written-out adjoint) against ``F.pad(mode='circular')``."""
    layer = Conv2d(2, 2, kernel, stride, "circular")
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(layer.weight_shape(), generator=gen, dtype=torch.float64)
    x = torch.randn((2, 2, 6, 5), generator=gen, dtype=torch.float64, requires_grad=True)
    p = layer.pad

    def reference(inp):
        return F.conv2d(F.pad(inp, (p, p, p, p), mode="circular") if p else inp, w, stride=stride)

    out, ref = layer.apply(w, [x]), reference(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    cot = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    (expected,) = torch.autograd.grad(ref, x, grad_outputs=cot)
    torch.testing.assert_close(layer.input_vjp(w, cot, tuple(x.shape)), expected, rtol=1e-12, atol=1e-12)


def test_a_layer_reading_several_activations_has_no_adjoint():
    spec = build_spec("random-dag", 6, hidden=(4,), num_classes=2)
    assert not spec.layers[0].has_input_vjp()
    assert spec.layers[1].reads(2) == (0, 1)
    assert not supports_manual(spec)


def test_manual_backend_handles_a_pooling_layer_followed_by_a_relu():
    spec = Spec("custom", 4, (2, 4, 4), (Conv2d(2, 3), AvgPool2d(2, relu=True), Linear(12, 3, relu=False)))
    assert supports_manual(spec)
    assert choose_backend(spec, 2) == "manual"
    params = sample_params(spec, 0, 1, dtype=torch.float64)
    x = sample_inputs(spec, 0, 1, 3, dtype=torch.float64)
    y = sample_labels(spec, 0, 1, 3)
    ref = input_gradients(spec, params, x, y)
    loss_grad, logit_grad = manual_gradients(spec, params, x, y)
    torch.testing.assert_close(loss_grad, ref.loss_grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(logit_grad, ref.logit_grad, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ plain data and hashes


@pytest.mark.parametrize(
    ("family", "dim", "opts"),
    [
        ("dense", 6, {"widths": (4,)}),
        ("strided-cnn", 8, {"channels": 2, "strides": (1, 2), "padding": "reflect"}),
        ("avgpool-cnn", 8, {"channels": 2, "strides": (1, 2)}),
        ("random-dag", 7, {"hidden": (5, 4), "seed": 3}),
    ],
)
def test_layers_round_trip_through_plain_data(family, dim, opts):
    spec = build_spec(family, dim, **opts)
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data
    for layer, d in zip(spec.layers, data["layers"]):
        again = layer_from_dict(d)
        assert type(again) is type(layer)
        assert again.to_dict() == d
        if isinstance(layer, MaskedLinear):
            assert d["mask"] == layer.mask.tolist()
            assert np.array_equal(again.mask, layer.mask)
        else:
            assert again == layer


def test_fingerprint_is_the_hash_of_the_canonical_dict():
    spec = build_spec("strided-cnn", 8, channels=2, strides=(1, 2))
    text = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
    assert spec.fingerprint() == hashlib.sha256(text.encode()).hexdigest()
    assert spec.fingerprint() == build_spec("strided-cnn", 8, channels=2, strides=(1, 2)).fingerprint()
    others = [
        build_spec("strided-cnn", 8, channels=2, strides=(1, 2), padding="circular"),
        build_spec("strided-cnn", 16, channels=2, strides=(1, 2)),
        build_spec("strided-cnn", 8, channels=3, strides=(1, 2)),
    ]
    assert len({spec.fingerprint(), *(o.fingerprint() for o in others)}) == 4
    # a random DAG's structure is in its masks: another dag seed is another net
    a, b = build_spec("random-dag", 8, seed=0), build_spec("random-dag", 8, seed=1)
    assert a.fingerprint() == build_spec("random-dag", 8, seed=0).fingerprint() != b.fingerprint()


# ------------------------------------------------------------------ a new kind from this file alone


@dataclass(frozen=True)
class Double(Layer):
    """1x1, channel-preserving: every pixel times the constant 2 (one in-edge per node)."""

    kind: ClassVar[str] = "test-double"
    relu: bool = False

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        return tuple(shapes[index - 1])

    def node_kind(self) -> str:
        return "pool"  # constant weights

    @property
    def constant_weight(self) -> Fraction:
        return Fraction(2)

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        for i in range(int(np.prod(shapes[index - 1]))):
            yield index - 1, i, i, {"weight_kind": "pool", "param": None, "value": Fraction(2)}

    def apply(self, weight, inputs, *, structural: bool = False) -> torch.Tensor:
        (h,) = inputs
        return h if structural else 2 * h

    def input_vjp(self, weight, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        return 2 * cotangent


def test_a_new_kind_needs_no_other_file(registry):
    register_layer(Double)
    assert registry["test-double"] is Double
    layers = (Conv2d(2, 3, 3, 1, "circular"), Double(), Linear(3 * 4 * 4, 3, relu=False))
    spec = Spec("toy", 4, (2, 4, 4), layers)
    plain = Spec("toy", 4, (2, 4, 4), (layers[0], layers[2]))
    assert spec.shapes == [(2, 4, 4), (3, 4, 4), (3, 4, 4), (3,)]
    assert layer_from_dict(Double().to_dict()) == Double()

    g = to_dag(spec)
    assert g.number_of_edges() == to_dag(plain).number_of_edges() + 3 * 16
    assert {g.nodes[(2, i)]["kind"] for i in range(48)} == {"pool"}
    P = operator_path_sums(spec)
    for o in output_nodes(g):
        assert lemma7_total(g, o) == 1
        exact = path_sums_dp(g, o, exact=True)
        assert [float(exact[x]) for x in input_nodes(g)] == pytest.approx(P[o[1]].tolist(), rel=1e-12)
    torch.testing.assert_close(P.sum(dim=1), torch.ones(3, dtype=torch.float64), rtol=1e-12, atol=0)

    # E[w^2] = 4 on the doubling edges, on both sides of Eq. 13
    moments = second_moment_map(spec)
    o = output_nodes(g)[0]
    dp = second_moment_dp(g, o, spec)
    assert [float(dp[x]) for x in input_nodes(g)] == pytest.approx(moments[0].tolist(), rel=1e-12)
    torch.testing.assert_close(moments, 4 * second_moment_map(plain), rtol=1e-12, atol=0)

    params = sample_params(spec, 0, 0, dtype=torch.float64)
    assert params[1] is None
    x = sample_inputs(spec, 0, 0, 2, dtype=torch.float64)
    torch.testing.assert_close(
        forward(spec, params, x), 2 * forward(plain, [params[0], params[2]], x), rtol=1e-12, atol=0
    )
    assert choose_backend(spec, 2) == "manual"
    y = sample_labels(spec, 0, 0, 2)
    ref = input_gradients(spec, params, x, y)
    for got, want in zip(manual_gradients(spec, params, x, y), (ref.loss_grad, ref.logit_grad)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_an_object_that_is_not_a_layer_is_a_spec_error():
    with pytest.raises(SpecError, match=r"not a graphs\.layers\.Layer"):
        _ = Spec("bad", 3, (3,), (object(),)).shapes
