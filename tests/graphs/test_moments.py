"""Exact second moments under (H) (Eq. 13): DP == operator form, the value 2 of Lemma 7 (Monte Carlo against
Eq. 13: tests/verify/checks/test_second_moments.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.moments import (
    dag_node_factors,
    predicted_grad_sq_norms,
    predicted_logit_grad_sq,
    second_moment_dp,
    second_moment_map,
)
from graphs.spec import build_spec

SMALL = [
    ("dense", 5, {"widths": (3, 4)}),
    ("dense", 7, {"widths": (6,), "num_classes": 3}),
    ("random-dag", 4, {"hidden": (5, 6), "max_in_degree": 3}),
    ("random-dag", 5, {"hidden": (4, 4, 4), "skip_prob": 0.6}),
    ("strided-cnn", 5, {"channels": 2, "strides": (1, 2)}),
    ("strided-cnn", 6, {"channels": 2, "strides": (2, 1), "padding": "circular"}),
    ("strided-cnn", 6, {"channels": 1, "strides": (1, 2), "padding": "reflect"}),
    ("avgpool-cnn", 4, {"channels": 2, "strides": (1, 2)}),
    ("avgpool-cnn", 8, {"channels": 1, "strides": (1, 2, 2), "padding": "circular"}),
    ("avgpool-cnn", 4, {"channels": 1, "strides": (1, 2), "padding": "reflect", "pools": (4,)}),
]


@pytest.mark.parametrize("variance", ["he", "init"])
@pytest.mark.parametrize(("family", "dim", "opts"), SMALL)
def test_dp_equals_operator_form(family, dim, opts, variance):
    """Exact Fractions (DP on the DAG) against float64 (operator form): equal up to float64 rounding."""
    spec = build_spec(family, dim, **opts)
    g = to_dag(spec)
    mmap = second_moment_map(spec, variance=variance).numpy()
    xs = input_nodes(g)
    for k, o in enumerate(output_nodes(g)):
        dp = second_moment_dp(g, o, spec, variance=variance, exact=True)
        for j, x in enumerate(xs):
            assert isinstance(dp[x], Fraction)
            assert math.isclose(float(dp[x]), mmap[k, j], rel_tol=1e-13, abs_tol=1e-300)
        dp_float = second_moment_dp(g, o, spec, variance=variance, exact=False)
        assert math.isclose(sum(dp_float.values()), float(sum(dp.values())), rel_tol=1e-13)


@given(
    d=st.integers(1, 12),
    widths=st.lists(st.integers(1, 9), min_size=0, max_size=3),
    classes=st.integers(1, 4),
)
def test_dense_h_value_is_two_whatever_the_widths_and_d(d, widths, classes):
    """ReLU hidden nodes give (2/d_p)(1/2) = 1/d_p, the linear logit 2/d_o: 2 * Lemma 7 = 2, exactly."""
    spec = build_spec("dense", d, widths=tuple(widths), num_classes=classes)
    g = to_dag(spec)
    o = output_nodes(g)[-1]
    dp = second_moment_dp(g, o, spec, exact=True)
    assert sum(dp.values()) == 2
    assert set(dp.values()) == {Fraction(2, d)}  # (S): every input carries 2/d


@given(d=st.integers(8, 400), widths=st.lists(st.integers(1, 300), min_size=1, max_size=3))
def test_dense_h_value_operator_form_large(d, widths):
    spec = build_spec("dense", d, widths=tuple(widths))
    norms = predicted_grad_sq_norms(spec)
    assert norms.sub(2.0).abs().max().item() <= 1e-12


@pytest.mark.parametrize("pools", [(1, 2), (2, 2), (4, 1), (2, 4)])
def test_pooling_divides_by_prod_a_exactly(pools):
    """Theorem 10's exact core: with every path crossing pools of areas a_i, the total is 2 / prod a_i."""
    spec = build_spec("avgpool-cnn", 8, channels=1, strides=(1, 2, 2), padding="circular", pools=pools)
    g = to_dag(spec)
    prod_a = math.prod(k * k for k in pools)
    for o in output_nodes(g)[:2]:
        assert sum(second_moment_dp(g, o, spec, exact=True).values()) == Fraction(2, prod_a)


def test_random_dag_h_value_is_two_and_init_equals_he():
    spec = build_spec("random-dag", 7, hidden=(9, 5, 7), max_in_degree=4, skip_prob=0.5, seed=3)
    g = to_dag(spec)
    for o in output_nodes(g):
        he = second_moment_dp(g, o, spec, exact=True)
        init = second_moment_dp(g, o, spec, variance="init", exact=True)
        assert he == init
        assert sum(he.values()) == 2


def test_init_variance_is_below_he_only_with_zero_padding():
    zeros = build_spec("strided-cnn", 8, channels=2, strides=(1, 2, 2))
    circular = build_spec("strided-cnn", 8, channels=2, strides=(1, 2, 2), padding="circular")
    assert predicted_logit_grad_sq(zeros, variance="init") < predicted_logit_grad_sq(zeros, variance="he") - 0.1
    assert predicted_logit_grad_sq(circular, variance="init") == pytest.approx(2.0, rel=1e-13)


def test_node_factors_of_a_pooling_net():
    spec = build_spec("avgpool-cnn", 4, channels=1, strides=(1, 2))
    g = to_dag(spec)
    f = dag_node_factors(g, spec)
    kinds = {a["kind"]: f[v] for v, a in g.nodes(data=True) if v in f}
    assert kinds["pool"] == Fraction(1, 16)  # (1/4)^2, no ReLU
    assert kinds["output"] == Fraction(2, spec.layers[-1].in_features)
    relu = {f[v] for v, a in g.nodes(data=True) if a["kind"] == "relu"}
    assert Fraction(1, 9) in relu
    assert max(relu) == Fraction(1, 4)
