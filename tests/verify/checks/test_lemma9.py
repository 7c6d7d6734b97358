"""verify.checks.lemma9: the weight draws, the tests' level and power, the exact Eq. 13 claim, the config."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import stats

from graphs.dag import to_dag
from graphs.errors import InputError
from graphs.rng import Stream, generator_for
from graphs.spec import build_spec
from tests.mc import assert_mc_close
from verify.checks.lemma9 import (
    TEST_COLUMNS,
    ExactSecondMoment,
    Lemma9Config,
    _exact_claim,
    _t_tests,
    check_lemma9,
    draw_weights,
    exact_two_ways,
    sample_shared_params,
    weight_matrix,
)
from verify.model import init_params
from verify.montecarlo import RECORD_COLUMNS
from verify.path_products import random_weights
from verify.results import Verdict
from verify.theory import LEMMA9_HYPOTHESES

SMALL = {"draws": 1500, "seed": 3, "max_inputs": 2, "max_paths": 30, "max_pairs": 300, "mc_draws": 0}


@pytest.fixture(scope="module")
def small_spec():
    return build_spec("random-dag", 4, hidden=(12, 12))


def test_he_init_is_consistent_and_the_planted_failure_is_not(small_spec):
    he = check_lemma9(Lemma9Config(small_spec, init="he", **SMALL))
    (size,) = he.sizes
    assert size.lemma9.verdict is Verdict.CONSISTENT, size.tests.nsmallest(3, "p")
    assert size.counts()["pair"] > 100
    assert size.counts()["mean"] > 20
    assert size.as_expected is True
    assert not he.rejected
    assert size.lemma9.hypotheses_needed == LEMMA9_HYPOTHESES
    assert size.lemma9.hypotheses_broken == ()

    shared = check_lemma9(Lemma9Config(small_spec, init="shared", rho=0.9, **SMALL))
    (size,) = shared.sizes
    assert size.lemma9.verdict is Verdict.INCONSISTENT
    assert size.lemma9.estimate == size.smallest("pair")[1] < 1e-4
    assert size.as_expected is True
    assert shared.rejected
    assert set(size.lemma9.hypotheses_broken) == {"H4", "H5"}
    assert not size.lemma9.implied
    # the rejected tests are pairs (two layers share weights; the others keep E[w_p] = 0)
    assert set(size.tests.loc[size.tests["reject"], "kind"]) == {"pair"}
    assert size.shared_layers == (1, 2)


def test_result_tables_and_records(small_spec):
    result = check_lemma9(Lemma9Config(small_spec, **{**SMALL, "draws": 40}))
    (size,) = result.sizes
    assert tuple(size.tests.columns) == TEST_COLUMNS
    assert (size.tests["p_adj"] >= size.tests["p"]).all()
    assert list(result.records.columns) == list(RECORD_COLUMNS)
    assert set(result.records["quantity"]) == {"weight"}
    assert len(result.records) == 40 * len(size.weights)
    assert (result.tests["dim"] == 4).all()
    assert len(result.tests) == len(size.tests)
    assert [c.name for c in result.claims] == ["Lemma 9 (dim 4)", "Eq. 13 DP = operator (dim 4)"]


def test_weight_records_are_the_initialisation_weights(small_spec):
    g = to_dag(small_spec)
    weights = random_weights(g, [tuple(g.edges(keys=True))])  # every edge: all weights of the net
    records = draw_weights(small_spec, weights, 5, seed=7)
    values = weight_matrix(records, len(weights))
    for i in range(5):
        params = init_params(small_spec, generator_for(Stream.WEIGHTS, 7, i), dtype=torch.float64)
        expected = [float(params[w[0] - 1][w[1:]]) for w in weights]
        assert values[i].tolist() == expected
    assert (records["input"].to_numpy() < len(weights)).all()


def test_weight_variances_are_two_over_fan_in(small_spec):
    g = to_dag(small_spec)
    weights = random_weights(g, [tuple(g.edges(keys=True))])[::7]
    values = weight_matrix(draw_weights(small_spec, weights, 3000, seed=1), len(weights))
    for j, w in enumerate(weights):
        fan_in = int(small_spec.layers[w[0] - 1].fan_in()[w[1]])
        assert_mc_close(values[:, j] ** 2, 2 / fan_in, what=f"E[w^2] of {w}")
        assert_mc_close(values[:, j], 0.0, what=f"E[w] of {w}")


def test_shared_init_keeps_the_variances_and_correlates_the_layers():
    spec = build_spec("dense", 3, widths=(4,))
    rho = 0.6
    draws = [sample_shared_params(spec, 11, i, layers=(1, 2), rho=rho) for i in range(3000)]
    w1 = np.array([float(w[0][1, 2]) for w in draws])
    w2 = np.array([float(w[1][3, 0]) for w in draws])
    assert_mc_close(w1**2, 2 / 3, what="E[w1^2]")
    assert_mc_close(w2**2, 2 / 4, what="E[w2^2]")
    assert_mc_close(w1 * w2, rho * np.sqrt(2 / 3 * 2 / 4), what="E[w1 w2]")
    assert_mc_close(w1, 0.0, what="E[w1]")


@pytest.mark.parametrize("init", ["he", "shared"])
def test_local_pair_moment_is_zero_under_he_and_three_rho_squared_when_shared(init):
    """x -> a -> o against x -> a' -> o: E[w_p w_p'] = 0 under He; with a shared component each of
    the four weights is sd (sqrt(1 - rho) z_i + sqrt(rho) s), and only E[s^4] = 3 survives."""
    spec = build_spec("dense", 3, widths=(4,))
    pair = [(1, 0, 2), (2, 1, 0), (1, 3, 2), (2, 1, 3)]  # w1[a, x] w2[o, a] w1[a', x] w2[o, a']
    rho = 0.8
    records = draw_weights(spec, pair, 4000, seed=2, init=init, shared_layers=(1, 2), rho=rho)
    values = weight_matrix(records, len(pair))
    exact = 3 * rho**2 * (2 / 3) * (2 / 4) if init == "shared" else 0.0  # sd1^2 sd2^2 E[s^4] rho^2
    assert_mc_close(values.prod(axis=1), exact, what=f"E[w_p w_p'] ({init})")


def test_vectorised_t_tests_equal_scipy_row_by_row():
    rng = np.random.default_rng(0)
    products = rng.standard_normal((6, 300)) * rng.standard_normal((6, 300)) ** 3
    products[4] = 0.0  # a constant product at 0: never rejected
    products[5] = 0.25  # a constant product away from 0: always rejected
    mean, se, t, p = _t_tests(products)
    for i in range(4):
        res = stats.ttest_1samp(products[i], 0.0)
        assert (t[i], p[i], mean[i]) == (res.statistic, res.pvalue, products[i].mean())
        assert se[i] == products[i].std(ddof=1) / np.sqrt(300)
    assert (p[4], t[4]) == (1.0, 0.0)
    assert (p[5], t[5]) == (0.0, np.inf)


def test_eq13_dp_equals_operator_and_the_claim_says_so(small_spec):
    exact = exact_two_ways(small_spec)
    assert [m.variance for m in exact] == ["he", "init"]
    for m in exact:
        assert m.dp == 2
        assert isinstance(m.dp, Fraction)
        assert m.within_rounding
        assert m.as_dict() == {"dp": "2", "dp_float": 2.0, "operator": m.operator, "difference": m.difference}
    claim = _exact_claim(small_spec, exact)
    assert claim.verdict is Verdict.CONSISTENT
    assert claim.estimate <= 1e-12
    off = ExactSecondMoment("he", Fraction(2), 2.0 + 1e-9)
    assert not off.within_rounding
    assert _exact_claim(small_spec, [*exact, off]).verdict is Verdict.INCONSISTENT
    assert ExactSecondMoment("he", Fraction(2), 2.0 + 4e-16).within_rounding


def test_reflect_padding_breaks_h5_and_leaves_no_definite_expectation():
    spec = build_spec("avgpool-cnn", 4, channels=1, strides=(1, 4), padding="reflect")
    result = check_lemma9(Lemma9Config(spec, draws=60, max_inputs=2, max_paths=10, max_pairs=20, mc_draws=0))
    (size,) = result.sizes
    assert size.shared_out_params > 0
    assert "H5" in size.lemma9.hypotheses_broken
    assert size.expected_rejection is None
    assert size.as_expected is None
    assert result.as_expected
    assert any("H5 fails by construction" in n for n in size.notes)


def test_monte_carlo_against_eq13_is_a_third_claim():
    spec = build_spec("dense", 12, widths=(16,))
    result = check_lemma9(Lemma9Config(spec, draws=20, max_inputs=1, max_paths=5, max_pairs=5, mc_draws=400))
    (size,) = result.sizes
    claim = size.claims[2]
    assert claim.name == "Eq. 13 Monte Carlo (dim 12)"
    assert claim.verdict is Verdict.CONSISTENT  # Eq. 13 is exact for a dense net
    assert size.monte_carlo.init == pytest.approx(2.0)
    assert size.monte_carlo.draws == 400
    assert set(size.mc_records["quantity"]) >= {"logit_grad_l2"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"draws": 5}, "at least 20"),
        ({"draws": 0}, "--draws"),
        ({"max_paths": 0}, "--max-paths"),
        ({"mc_draws": 1}, "--mc-draws"),
        ({"alpha": 1.5}, "--alpha"),
        ({"rho": 0.0}, "--rho"),
        ({"seed": -1}, "--seed"),
        ({"init": "uniform"}, "--init"),
        ({"shared_layers": (1, 2)}, "--init shared only"),
        ({"init": "shared", "shared_layers": (1, 9)}, "--shared-layers"),
        ({"init": "shared", "shared_layers": (1, 1)}, "--shared-layers"),
        ({"init": "shared", "shared_layers": (1, 2, 3)}, "exactly two"),
    ],
)
def test_config_refuses_bad_settings_with_one_line(small_spec, kwargs, match):
    with pytest.raises(InputError, match=match):
        Lemma9Config(small_spec, **kwargs)


def test_config_takes_one_spec_or_several_and_refuses_large_dags(small_spec):
    one = Lemma9Config(small_spec)
    assert one.specs == (small_spec,)
    assert one.settings()["dims"] == [4]
    two = Lemma9Config((small_spec, build_spec("random-dag", 5, hidden=(12, 12))), init="shared")
    assert two.settings()["dims"] == [4, 5]
    assert two.settings()["shared_layers"] == [1, 2]
    with pytest.raises(InputError, match="edges"):
        Lemma9Config(build_spec("dense", 1000))
    with pytest.raises(InputError, match="two layers with random weights"):
        Lemma9Config(build_spec("dense", 4, widths=()), init="shared")


@pytest.mark.slow
def test_the_family_keeps_its_level_under_he_init(small_spec):
    """Under (H) the Holm family rejects with probability <= alpha: over 20 seeds at alpha = 0.05,
    5 or more rejections would happen with probability < 0.003."""
    rejected = 0
    for seed in range(20):
        kw = {**SMALL, "seed": seed, "draws": 800}
        rejected += check_lemma9(Lemma9Config(small_spec, **kw)).rejected
    assert rejected <= 4
