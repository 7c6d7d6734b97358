"""Path sums: brute force == DP (exact and float64) == operator form; Lemmas 7 and 8."""

from __future__ import annotations

import math
from fractions import Fraction

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.errors import CyclicGraphError, SpecError
from graphs.operator import in_degree_maps, operator_vjp, path_sums_operator
from graphs.pathsums import (
    lemma7_total,
    lemma8_holds,
    operator_path_sums,
    output_classes,
    path_sums_bruteforce,
    path_sums_dp,
    scaled_path_sum_range,
    spec_edge_count,
)
from graphs.spec import build_spec
from graphs.symmetry import is_symmetric_dag
from tests.strategies import random_dags, symmetric_dags, thorough


@given(random_dags(), st.data())
def test_dp_equals_bruteforce_exactly(g, data):
    o = data.draw(st.sampled_from(output_nodes(g)))
    assert path_sums_dp(g, o, exact=True) == path_sums_bruteforce(g, o)


@given(random_dags(), st.data())
def test_float_dp_is_the_exact_dp_rounded(g, data):
    o = data.draw(st.sampled_from(output_nodes(g)))
    exact = path_sums_dp(g, o, exact=True)
    approx = path_sums_dp(g, o)
    for x, v in exact.items():
        assert approx[x] == pytest.approx(float(v), rel=1e-13, abs=0)


@given(random_dags(), st.data())
def test_generic_factor_dp_equals_bruteforce(g, data):
    """Any node factor (here the second moments of issue 4's shape, 2/d or 1/d by kind)."""
    o = data.draw(st.sampled_from(output_nodes(g)))

    def factor(node, attrs, degree):
        return Fraction(2, degree) if attrs.get("kind") == "relu" else Fraction(3, degree + 1)

    assert path_sums_dp(g, o, exact=True, factor=factor) == path_sums_bruteforce(g, o, factor)


@given(random_dags())
def test_lemma7_exact_on_every_dag(g):
    for o in output_nodes(g):
        assert lemma7_total(g, o) == 1
        assert lemma7_total(g, o, exact=False) == pytest.approx(1.0, rel=1e-14)


@given(random_dags(attributes=False), st.data())
def test_graph_without_attributes(g, data):
    """Plain graphs: inputs are the sources, and Lemma 7 holds for every sink."""
    o = data.draw(st.sampled_from(output_nodes(g)))
    assert set(input_nodes(g)) == {v for v in g if g.in_degree(v) == 0}
    assert lemma7_total(g, o) == 1
    assert path_sums_dp(g, o, exact=True) == path_sums_bruteforce(g, o)


@given(st.one_of(random_dags(), symmetric_dags()))
def test_lemma8_on_every_symmetric_dag(g):
    for o in output_nodes(g):
        if is_symmetric_dag(g, o):
            assert lemma8_holds(g, o)
            assert scaled_path_sum_range(g, o) == (1, 1)


@given(symmetric_dags())
def test_symmetric_dags_satisfy_lemma8(g):
    (o,) = output_nodes(g)
    assert is_symmetric_dag(g, o)
    d = len(input_nodes(g))
    assert set(path_sums_dp(g, o, exact=True).values()) == {Fraction(1, d)}


def test_parallel_edges_count_as_paths():
    g = nx.MultiDiGraph()
    g.add_edges_from([("x", "h"), ("x", "h"), ("y", "h"), ("h", "o")])
    sums = path_sums_dp(g, "o", exact=True)
    assert sums == {"x": Fraction(2, 3), "y": Fraction(1, 3)}
    assert path_sums_bruteforce(g, "o") == sums


def test_cyclic_graph_is_refused():
    g = nx.DiGraph([(0, 1), (1, 2), (2, 1), (2, 3)])
    for call in (
        lambda: path_sums_dp(g, 3),
        lambda: path_sums_dp(g, 3, exact=True),
        lambda: path_sums_bruteforce(g, 3),
        lambda: lemma7_total(g, 3),
    ):
        with pytest.raises(CyclicGraphError, match="cycle"):
            call()


# ------------------------------------------------------------ operator form == DP on specs


def _small_spec_strategy():
    pad = st.sampled_from(["zeros", "circular", "reflect"])
    cnn = st.builds(
        lambda fam, n, pad, ch, cin, strides, kernel: (
            fam,
            n,
            {
                "padding": pad,
                "channels": ch,
                "in_channels": cin,
                "strides": strides,
                "kernel": kernel,
                "num_classes": 2,
            },
        ),
        st.sampled_from(["strided-cnn", "avgpool-cnn"]),
        st.sampled_from([4, 6, 8]),
        pad,
        st.integers(1, 2),
        st.integers(1, 2),
        st.sampled_from([(1, 2), (2, 2), (1, 1), (2,)]),
        st.sampled_from([1, 3]),
    )
    dense = st.builds(
        lambda d, widths: ("dense", d, {"widths": widths, "num_classes": 2}),
        st.integers(1, 6),
        st.lists(st.integers(1, 5), min_size=1, max_size=2).map(tuple),
    )
    rdag = st.builds(
        lambda d, seed, skip: (
            "random-dag",
            d,
            {"hidden": (4, 3), "max_in_degree": 3, "skip_prob": skip, "seed": seed, "num_classes": 3},
        ),
        st.integers(1, 6),
        st.integers(0, 50),
        st.sampled_from([0.0, 0.5]),
    )
    return st.one_of(cnn, dense, rdag)


def _build(case):
    fam, n, opts = case
    try:
        return build_spec(fam, n, **opts)
    except SpecError:  # only a spec that cannot be built; any other error is a failure
        return None


@settings(max_examples=150 if thorough() else 30)
@given(_small_spec_strategy())
def test_operator_form_equals_exact_dp_on_small_specs(case):
    spec = _build(case)
    if spec is None:  # e.g. reflect padding too wide, pooling windows that do not tile
        return
    g = to_dag(spec)
    outs = output_nodes(g)
    P = path_sums_operator(spec)
    grouped = operator_path_sums(spec)
    for k, o in enumerate(outs):
        exact = path_sums_dp(g, o, exact=True)
        row = [float(exact[(0, i)]) for i in range(spec.d)]
        assert P[k].tolist() == pytest.approx(row, rel=1e-12, abs=0)
        assert grouped[k].tolist() == pytest.approx(row, rel=1e-12, abs=0)
        assert math.fsum(P[k].tolist()) == pytest.approx(1.0, rel=1e-13)
    assert spec_edge_count(spec) == g.number_of_edges()


@pytest.mark.parametrize("padding", ["zeros", "circular", "reflect"])
def test_operator_generic_multipliers_equal_dp(padding):
    """Any node factor (not only 1/d): the operator form with multipliers == the exact DP."""
    spec = build_spec("avgpool-cnn", 8, channels=2, in_channels=2, strides=(1, 2), padding=padding, num_classes=2)
    g = to_dag(spec)
    mult = [torch.full_like(m, 3 / (l + 1)) for l, m in enumerate(in_degree_maps(spec), start=1)]
    rows = operator_vjp(spec, mult, [0, 1])
    for k in (0, 1):
        exact = path_sums_dp(g, (len(spec.layers), k), exact=True, factor=lambda v, a, deg: Fraction(3, a["layer"] + 1))
        assert rows[k].tolist() == pytest.approx([float(exact[(0, i)]) for i in range(spec.d)], rel=1e-12, abs=0)


def test_output_classes():
    assert output_classes(build_spec("dense", 5, widths=(3,), num_classes=4)) == [[0, 1, 2, 3]]
    spec = build_spec("random-dag", 6, hidden=(4,), max_in_degree=2, num_classes=5, seed=1)
    classes = output_classes(spec)
    assert sorted(o for c in classes for o in c) == list(range(5))
    mask = spec.layers[-1].mask
    for c in classes:
        assert all((mask[o] == mask[c[0]]).all() for o in c)


def test_lemma7_and_8_on_larger_dags(is_thorough):
    """Dense (S holds: d P = 1 exactly) and a random DAG (S fails but Lemma 7 holds)."""
    d = 24 if is_thorough else 10
    dense = to_dag(build_spec("dense", d, widths=(7, 5), num_classes=2))
    for o in output_nodes(dense):
        assert lemma8_holds(dense, o)
    rdag = to_dag(build_spec("random-dag", d, hidden=(9, 8, 7), seed=4, num_classes=3))
    for o in output_nodes(rdag):
        assert lemma7_total(rdag, o) == 1
