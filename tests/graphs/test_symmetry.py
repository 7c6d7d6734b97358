"""(S): polynomial DP == brute-force multisets; randomised identity test == exact test."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs.dag import output_nodes, to_dag
from graphs.errors import CyclicGraphError, SpecError
from graphs.operator import in_degree_maps, operator_vjp
from graphs.spec import build_spec
from graphs.symmetry import (
    false_positive_bound,
    is_prime,
    is_symmetric_bruteforce,
    is_symmetric_dag,
    is_symmetric_operator,
    is_symmetric_spec_dag,
    modular_path_polynomials,
    path_degree_multisets,
    path_degree_polynomials,
    random_prime,
    randomised_symmetry,
    symmetry_status,
    symmetry_verdict,
)
from tests.strategies import random_dags, symmetric_dags, thorough


def _multiset_of(poly):
    """The path-degree multiset a polynomial encodes (monomial -> sorted degree tuple)."""
    return Counter({tuple(deg for deg, power in mono for _ in range(power)): c for mono, c in poly.items()})


@given(st.one_of(random_dags(), symmetric_dags()), st.data())
def test_polynomials_are_the_bruteforce_multisets(g, data):
    o = data.draw(st.sampled_from(output_nodes(g)))
    polys = path_degree_polynomials(g, o)
    multisets = path_degree_multisets(g, o)
    assert polys.keys() == multisets.keys()
    for x in polys:
        assert _multiset_of(polys[x]) == +multisets[x]
        for mono, c in polys[x].items():
            assert list(mono) == sorted(mono)
            assert c > 0
            assert all(p > 0 for _, p in mono)
    assert is_symmetric_dag(g, o) == is_symmetric_bruteforce(g, o)


@given(symmetric_dags())
def test_symmetric_construction_is_symmetric(g):
    (o,) = output_nodes(g)
    assert is_symmetric_dag(g, o)
    assert is_symmetric_bruteforce(g, o)


def test_asymmetric_example():
    # x reaches o through a degree-2 node, y through a degree-1 node: same counts, other degrees.
    g = nx.MultiDiGraph([("x", "a"), ("z", "a"), ("y", "b"), ("a", "o"), ("b", "o"), ("z", "o")])
    assert not is_symmetric_dag(g, "o")
    assert path_degree_polynomials(g, "o")["x"] == {((2, 1), (3, 1)): 1}
    assert path_degree_polynomials(g, "o")["y"] == {((1, 1), (3, 1)): 1}


def test_cyclic_graph_is_refused():
    g = nx.DiGraph([(0, 1), (1, 2), (2, 1), (2, 3)])
    with pytest.raises(CyclicGraphError):
        path_degree_polynomials(g, 3)
    with pytest.raises(CyclicGraphError):
        path_degree_multisets(g, 3)


def test_is_prime_and_random_prime():
    small = [n for n in range(2, 2000) if all(n % q for q in range(2, int(n**0.5) + 1))]
    assert [n for n in range(2000) if is_prime(n)] == small
    assert is_prime(2**61 - 1)
    assert not is_prime((2**31 - 1) * (2**19 - 1))
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = random_prime(10_000, rng)
        assert 5_000 < p <= 10_000
        assert is_prime(p)


# ------------------------------------------------------------ randomised test on specs

SPECS = [
    ("dense", 5, {"widths": (4, 3), "num_classes": 2}, True),
    (
        "strided-cnn",
        6,
        {"channels": 2, "in_channels": 1, "strides": (1, 1), "padding": "circular", "num_classes": 2},
        True,
    ),
    (
        "strided-cnn",
        9,
        {"channels": 2, "in_channels": 2, "strides": (3, 3), "padding": "circular", "num_classes": 2},
        True,
    ),
    (
        "strided-cnn",
        6,
        {"channels": 2, "in_channels": 1, "strides": (1, 1), "padding": "zeros", "num_classes": 2},
        False,
    ),
    (
        "strided-cnn",
        8,
        {"channels": 2, "in_channels": 1, "strides": (1, 2), "padding": "circular", "num_classes": 2},
        False,
    ),
    (
        "strided-cnn",
        6,
        {"channels": 1, "in_channels": 1, "strides": (1,), "padding": "reflect", "num_classes": 2},
        False,
    ),
    (
        "avgpool-cnn",
        8,
        {"channels": 2, "in_channels": 1, "strides": (1, 2), "padding": "circular", "num_classes": 2},
        True,
    ),
    ("random-dag", 6, {"hidden": (5, 4), "max_in_degree": 3, "num_classes": 3}, False),
]


@pytest.mark.parametrize(
    ("fam", "n", "opts", "expected"),
    SPECS,
    ids=[f"{c[0]}-{c[1]}-{c[2].get('padding', '')}-{c[2].get('strides', '')}" for c in SPECS],
)
def test_randomised_equals_exact_on_specs(fam, n, opts, expected):
    spec = build_spec(fam, n, **opts)
    assert is_symmetric_spec_dag(spec) is expected
    verdict = randomised_symmetry(spec, trials=3, seed=1)
    assert verdict.symmetric is expected
    assert is_symmetric_operator(spec, trials=2, seed=7) is expected
    assert symmetry_status(spec) is expected
    if expected:
        assert 0 < verdict.false_positive_bound < 1e-12
    else:
        o, x = verdict.witness
        g = to_dag(spec)
        polys = path_degree_polynomials(g, (len(spec.layers), o))
        assert polys[(0, x)] != polys[(0, 0)]


@settings(max_examples=80 if thorough() else 15)
@given(
    st.sampled_from(["zeros", "circular", "reflect"]),
    st.sampled_from([(1, 2), (1, 1), (2,), (3,)]),
    st.sampled_from([4, 6, 9]),
    st.integers(0, 10**6),
)
def test_randomised_equals_exact_property(padding, strides, n, seed):
    try:
        spec = build_spec("strided-cnn", n, channels=2, in_channels=1, strides=strides, padding=padding, num_classes=2)
    except SpecError:  # a size the strides or reflect padding cannot take
        return
    assert randomised_symmetry(spec, trials=2, seed=seed).symmetric == is_symmetric_spec_dag(spec)


def test_modular_evaluation_is_the_polynomial_mod_p():
    """The float64 modular backward pass gives exactly the integer polynomial evaluated mod p."""
    spec = build_spec("avgpool-cnn", 8, channels=2, in_channels=2, strides=(1, 2), padding="reflect", num_classes=2)
    g = to_dag(spec)
    rng = np.random.default_rng(3)
    degrees = sorted({int(v) for m in in_degree_maps(spec) for v in torch.unique(m).tolist()})
    p = random_prime(2**26, rng)
    z = {deg: int(rng.integers(0, p)) for deg in degrees}
    values = modular_path_polynomials(spec, z, p)
    for o in range(2):
        polys = path_degree_polynomials(g, (len(spec.layers), o))
        for i in range(spec.d):
            expected = 0
            for mono, c in polys[(0, i)].items():
                term = c
                for deg, power in mono:
                    term *= pow(z[deg], power, p)
                expected = (expected + term) % p
            assert int(values[o, i]) == expected


def test_modular_evaluation_matches_float_operator_for_small_values():
    """With tiny multipliers no mod is ever taken: the modular pass is the plain operator form."""
    spec = build_spec("strided-cnn", 8, channels=2, in_channels=1, strides=(1, 2), padding="circular", num_classes=3)
    degrees = sorted({int(v) for m in in_degree_maps(spec) for v in torch.unique(m).tolist()})
    z = {deg: 1 + k for k, deg in enumerate(degrees)}
    mult = []
    for m in in_degree_maps(spec):
        out = torch.empty_like(m)
        for deg, value in z.items():
            out[m == deg] = float(value)
        mult.append(out)
    plain = operator_vjp(spec, mult, [0, 1, 2])
    assert torch.equal(modular_path_polynomials(spec, z, 2**26 - 5), plain)  # 2^26 - 5 is prime
    assert is_prime(2**26 - 5)


def test_modulus_too_large_is_refused():
    spec = build_spec("dense", 4, widths=(3,), num_classes=2)
    with pytest.raises(ValueError, match="too large"):
        modular_path_polynomials(spec, {4: 1, 3: 1}, 2**27 + 29)


def test_false_positive_bound_decreases_with_trials():
    spec = build_spec("dense", 6, widths=(5,), num_classes=2)
    b1, b3 = false_positive_bound(spec, 1), false_positive_bound(spec, 3)
    assert 0 < b3 < b1 < 1e-4
    assert b3 == pytest.approx(b1**3)


def test_symmetry_verdict_switches_to_randomised_for_large_dags():
    spec = build_spec("strided-cnn", 8, channels=2, in_channels=1, strides=(1, 2), padding="circular", num_classes=2)
    exact = symmetry_verdict(spec)
    randomised = symmetry_verdict(spec, max_dag_edges=10)
    assert exact.method == "dag-polynomial"
    assert randomised.method == "randomised"
    assert exact.symmetric == randomised.symmetric is False
