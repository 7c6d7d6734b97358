"""``check_paths``: Lemmas 7 and 8 on real nets, the claims' verdict rules, config validation."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphs.errors import InputError
from graphs.spec import build_spec
from verify.checks.paths import (
    FLOAT_RTOL,
    PathRow,
    PathsConfig,
    bounded_claim,
    check_paths,
    lemma7_claim,
    lemma8_claim,
)
from verify.checks.scaling import hypothesis_status
from verify.results import Verdict
from verify.theory import DP_BOUND_RATIO, dp_bounded, dp_range_ratios

SMALL_CNN = {"channels": 4, "strides": (1, 2, 2)}


def _cnn(n: int, **opts):
    return build_spec("strided-cnn", n, **{**SMALL_CNN, **opts})


# ------------------------------------------------------------------ real nets


def test_dense_exact_every_claim_consistent():
    result = check_paths(PathsConfig(tuple(build_spec("dense", d, widths=(5, 3)) for d in (4, 6)), exact=True))
    for row in result.rows:
        assert row.lemma7_exact == Fraction(1)
        assert row.dp_exact == (Fraction(1), Fraction(1))
        assert row.symmetric
        assert row.symmetry_method == "dag-polynomial"
        assert row.witness is None
        assert row.h3_fraction == 0
        assert row.structural == ()
    assert [c.name for c in result.claims] == ["Lemma 7", "Lemma 8 / (S)", "(S-bounded)"]
    assert [c.verdict for c in result.claims] == [Verdict.CONSISTENT] * 3
    assert result.lemma7.interval.method == "exact"
    assert result.lemma7.estimate == 1.0
    assert result.lemma8.hypotheses_needed == ("(S)",)
    assert result.lemma8.hypotheses_broken == ()


def test_zero_padding_cnn_breaks_s_and_h3_but_stays_bounded():
    result = check_paths(PathsConfig((_cnn(16), _cnn(8))))
    assert [r.dim for r in result.rows] == [8, 16]  # sorted by d
    for row in result.rows:
        assert abs(row.lemma7_total - 1) < 1e-13
        assert not row.symmetric
        assert row.witness is not None
        assert 0 < row.h3_fraction < 1
        assert row.dp_min < 1 < row.dp_max
        img = row.scaled_first_logit
        assert img.shape == (3, row.dim, row.dim)
        assert row.channels_identical
        # Lemma 7 restated: the mean of d * P(x, o) over the inputs is 1
        assert img.mean() == pytest.approx(1, rel=1e-12)
    assert result.lemma7.verdict is Verdict.CONSISTENT
    assert result.lemma8.verdict is Verdict.INCONCLUSIVE
    assert result.lemma8.hypotheses_broken == ("(S)",)
    assert result.bounded.verdict is Verdict.CONSISTENT
    assert result.bounded.estimate == pytest.approx(1, abs=1e-12)
    assert result.hypotheses.broken == ("(S)", "H3")


def test_kernel_equals_stride_circular_is_symmetric_by_the_randomised_test():
    # 243 = 3^5 with kernel 3 = stride 3: every input has one path-degree sequence; the DAG is
    # too large for the exact polynomials, so the randomised test decides.
    spec = build_spec("strided-cnn", 243, channels=4, strides=(3, 3), padding="circular")
    result = check_paths(PathsConfig((spec,), trials=2, seed=3))
    (row,) = result.rows
    assert row.symmetric
    assert row.symmetry_method == "randomised"
    assert row.symmetry_trials == 2
    assert len(row.primes) == 2
    assert 0 < row.false_positive_bound < 1e-10
    assert row.dp_min == pytest.approx(1, rel=1e-13)
    assert row.dp_max == pytest.approx(1, rel=1e-13)
    assert [c.verdict for c in result.claims] == [Verdict.CONSISTENT] * 3
    again = check_paths(PathsConfig((spec,), trials=2, seed=3)).rows[0]
    assert again.primes == row.primes  # the seed fixes the test


def test_randomised_failure_is_certified():
    row = check_paths(PathsConfig((build_spec("strided-cnn", 128, channels=2, strides=(2, 2)),), trials=3)).rows[0]
    assert row.symmetry_method == "randomised"
    assert not row.symmetric
    assert row.false_positive_bound == 0.0
    assert row.witness is not None
    assert 1 <= row.symmetry_trials <= 3


def test_exact_random_dag_matches_operator_form_and_catches_an_unbounded_range():
    specs = tuple(build_spec("random-dag", d, hidden=(5, 4)) for d in (7, 9))
    exact = check_paths(PathsConfig(specs, exact=True))
    approx = check_paths(PathsConfig(specs))
    for e, a in zip(exact.rows, approx.rows):
        assert e.lemma7_exact == 1
        assert a.dp_min == pytest.approx(e.dp_min, rel=1e-12, abs=1e-15)
        assert a.dp_max == pytest.approx(e.dp_max, rel=1e-12)
        assert (e.symmetric, e.witness) == (a.symmetric, a.witness)
        np.testing.assert_allclose(a.scaled_first_logit, e.scaled_first_logit, rtol=1e-12, atol=1e-15)
    # at d = 9 some input has no path to the logits: d*P(x,o) reaches 0
    assert exact.rows[1].dp_min == 0
    assert exact.bounded.verdict is Verdict.INCONSISTENT
    assert "minimum is 0" in exact.bounded.note
    assert "(S-bounded)" in exact.hypotheses.broken


@given(
    d=st.integers(2, 6),
    hidden=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    dag_seed=st.integers(0, 10_000),
)
def test_lemma7_is_exact_on_random_dags(d, hidden, dag_seed):
    spec = build_spec("random-dag", d, hidden=tuple(hidden), seed=dag_seed, num_classes=2)
    result = check_paths(PathsConfig((spec,), exact=True))
    assert result.rows[0].lemma7_exact == 1
    assert result.lemma7.verdict is Verdict.CONSISTENT
    # Lemma 8 is a theorem: never contradicted, only vacuous where (S) fails
    expected = Verdict.CONSISTENT if result.rows[0].symmetric else Verdict.INCONCLUSIVE
    assert result.lemma8.verdict is expected


def test_progress_is_one_line_updated_per_size(capsys):
    check_paths(PathsConfig(tuple(build_spec("dense", d, widths=(3,)) for d in (2, 3, 4))), progress=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line, rewritten in place as the sizes go by
    assert "size 3/3, dim 4" in err
    final = err.rsplit("\r\033[K", 1)[-1]
    assert final.startswith("paths: path sums, (S) and H3 at 3 size(s) (operator form): ")
    assert final.endswith(" s\n")


# ------------------------------------------------------------------ verdict rules on synthetic rows


def _row(dim: int = 8, **changes) -> PathRow:
    base = PathRow(
        dim=dim,
        d=dim,
        lemma7_total=1.0,
        lemma7_exact=None,
        dp_min=1.0,
        dp_max=1.0,
        dp_exact=None,
        symmetric=True,
        symmetry_method="dag-polynomial",
        symmetry_trials=0,
        primes=(),
        false_positive_bound=0.0,
        witness=None,
        h3_fraction=0.0,
        structural=(),
        scaled_first_logit=np.ones(dim),
    )
    return dataclasses.replace(base, **changes)


def test_lemma7_rule_allows_float_rounding_only():
    assert lemma7_claim([_row(lemma7_total=1 + 1e-12)], exact=False).verdict is Verdict.CONSISTENT
    bad = lemma7_claim([_row(4), _row(8, lemma7_total=1 + 10 * FLOAT_RTOL)], exact=False)
    assert bad.verdict is Verdict.INCONSISTENT
    assert bad.estimate == 1 + 10 * FLOAT_RTOL
    assert "dims [8]" in bad.note
    assert bad.interval.low == bad.interval.high == bad.estimate
    assert bad.interval.level == 1.0
    # in Fraction mode nothing is rounding: a total 1e-30 off is a contradiction, though its float is 1
    off = Fraction(1) + Fraction(1, 10**30)
    exact = lemma7_claim([_row(lemma7_total=float(off), lemma7_exact=off)], exact=True)
    assert exact.verdict is Verdict.INCONSISTENT
    assert exact.interval.method == "exact"


def test_lemma8_rule():
    spread = {"dp_min": 0.5, "dp_max": 2.0}
    # (S) holds but d*P is not 1: a real contradiction
    bad = lemma8_claim([_row(**spread)], exact=False)
    assert bad.verdict is Verdict.INCONSISTENT
    assert bad.hypotheses_broken == ()
    rnd = lemma8_claim([_row(symmetry_method="randomised", false_positive_bound=1e-20, **spread)], exact=False)
    assert rnd.verdict is Verdict.INCONSISTENT
    assert "randomised (S) test erred" in rnd.note
    # (S) fails everywhere: the lemma says nothing, whatever the range
    for changes in (spread, {}):
        vacuous = lemma8_claim([_row(symmetric=False, **changes)], exact=False)
        assert vacuous.verdict is Verdict.INCONCLUSIVE
        assert vacuous.hypotheses_broken == ("(S)",)
    # (S) holds at one size with d*P = 1, fails at another: consistent, with (S) broken
    mixed = lemma8_claim([_row(4), _row(8, symmetric=False, **spread)], exact=False)
    assert mixed.verdict is Verdict.CONSISTENT
    assert mixed.hypotheses_broken == ("(S)",)
    assert (mixed.interval.low, mixed.interval.high) == (1.0, 1.0)  # the range of the sizes judged
    # float rounding passes, a Fraction off by 1e-30 does not
    assert lemma8_claim([_row(dp_max=1 + 1e-13)], exact=False).verdict is Verdict.CONSISTENT
    tiny = Fraction(1) + Fraction(1, 10**30)
    exact = lemma8_claim([_row(dp_exact=(Fraction(1), tiny))], exact=True)
    assert exact.verdict is Verdict.INCONSISTENT


def _bounded(rows):
    return bounded_claim(rows, hypothesis_status([r.status for r in rows]))


def test_s_bounded_rule_is_the_scaling_checks():
    asym = {"symmetric": False, "symmetry_method": "randomised"}
    stable = [_row(8, dp_min=0.2, dp_max=2.0, **asym), _row(16, dp_min=0.2, dp_max=2.0 * 1.04, **asym)]
    claim = _bounded(stable)
    assert claim.verdict is Verdict.CONSISTENT
    assert claim.estimate == pytest.approx(1.04)
    drifting = [stable[0], _row(16, dp_min=0.1, dp_max=2.5, **asym)]
    claim = _bounded(drifting)
    assert claim.verdict is Verdict.INCONSISTENT
    assert claim.estimate == pytest.approx(0.5)
    assert (claim.interval.low, claim.interval.high) == pytest.approx((0.5, 1.25))
    assert _bounded([stable[0]]).verdict is Verdict.INCONCLUSIVE
    assert _bounded([_row()]).verdict is Verdict.CONSISTENT  # (S) gives d*P = 1 at every d
    # one rule for both checks
    assert dp_range_ratios((0.2, 2.0), (0.1, 2.5)) == pytest.approx((0.5, 1.25))
    assert dp_bounded((0.2, 2.0), (0.2, 2.0 * DP_BOUND_RATIO))
    assert not dp_bounded((0.2, 2.0), (0.2, 2.2))
    assert not dp_bounded((0.0, 2.0), (0.0, 2.0))
    assert hypothesis_status([r.status for r in stable]).bounded
    assert not hypothesis_status([r.status for r in drifting]).bounded


# ------------------------------------------------------------------ config


def test_config_settings():
    config = PathsConfig((_cnn(16), _cnn(8)), trials=2, seed=5)
    assert config.settings() == {
        "arch": "strided-cnn",
        "options": {"padding": "zeros", "channels": 4, "strides": [1, 2, 2], "kernel": 3, "num_classes": 10},
        "dims": [8, 16],
        "d": [192, 768],
        "exact": False,
        "trials": 2,
        "seed": 5,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trials": 0}, "--trials"),
        ({"trials": 2.5}, "--trials"),
        ({"seed": -1}, "--seed"),
        ({"specs": ()}, "no sizes"),
        ({"specs": (build_spec("dense", 4, widths=(3,)), build_spec("random-dag", 5, hidden=(3,)))}, "one family"),
        ({"specs": (build_spec("strided-cnn", 32),), "exact": True}, "drop --exact"),
    ],
)
def test_config_rejects_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        PathsConfig(**{"specs": (build_spec("dense", 4, widths=(3,)),), **kwargs})
