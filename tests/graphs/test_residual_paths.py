"""Path sums, (S) and Eq. 13 on random residual nets: brute force == dynamic programming == the
operator form, with skip connections built by the residual kinds themselves."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.hypotheses import check_h2
from graphs.moments import second_moment_dp, second_moment_map
from graphs.pathsums import lemma7_total, operator_path_sums, path_sums_bruteforce, path_sums_dp
from graphs.symmetry import is_symmetric_bruteforce, is_symmetric_dag
from tests.strategies import residual_specs


@given(residual_specs())
def test_brute_force_path_sums_equal_dp_and_the_operator_form(spec):
    g = to_dag(spec)
    P = operator_path_sums(spec)
    xs = input_nodes(g)
    for o in output_nodes(g):
        brute = path_sums_bruteforce(g, o)
        dp = path_sums_dp(g, o, exact=True)
        assert brute == dp
        assert lemma7_total(g, o) == 1
        for j, x in enumerate(xs):
            assert math.isclose(float(dp[x]), float(P[o[1], j]), rel_tol=1e-12, abs_tol=1e-300)
    assert check_h2(g)


@given(residual_specs())
def test_skips_add_paths_that_the_dag_counts(spec):
    """Each addition node has exactly two in-edges, one from each branch it reads."""
    g = to_dag(spec)
    for l, layer in enumerate(spec.layers, start=1):
        if layer.kind == "add":
            for i in range(spec.sizes[l]):
                sources = sorted(u[0] for u, _ in g.in_edges((l, i)))
                assert sources == sorted(layer.reads(l))


@given(residual_specs())
def test_symmetry_polynomials_equal_brute_force_multisets(spec):
    g = to_dag(spec)
    for o in output_nodes(g):
        assert is_symmetric_dag(g, o) == is_symmetric_bruteforce(g, o)


@given(residual_specs())
def test_eq13_dp_equals_the_operator_form_with_skips(spec):
    g = to_dag(spec)
    mmap = second_moment_map(spec)
    for k, o in enumerate(output_nodes(g)):
        dp = second_moment_dp(g, o, spec, exact=True)
        for j, x in enumerate(input_nodes(g)):
            assert isinstance(dp[x], Fraction)
            assert math.isclose(float(dp[x]), float(mmap[k, j]), rel_tol=1e-12, abs_tol=1e-300)
