"""verify.checks.calibrate: the nets whose truth is exact, the planted violations, the summaries."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from graphs.errors import InputError
from graphs.hypotheses import h3_violation_fraction
from graphs.moments import predicted_logit_grad_sq
from graphs.symmetry import symmetry_verdict
from verify.checks.calibrate import (
    RECORD_COLUMNS,
    CalibrateConfig,
    check_calibrate,
    planted_dense_nets,
    pooled_nets,
    receptive_field,
    summarise,
)
from verify.results import Verdict


def test_pooled_nets_satisfy_symmetry_exactly_and_their_receptive_field():
    spec = pooled_nets([8], channels=2)[0]
    assert symmetry_verdict(spec).symmetric
    # conv 3 (s1) -> conv 3 (s1) -> pool 2 -> conv 3 (s1) -> pool 2: R = 1 + 2 + 2 + 1 + 4 + 2 = 12, J = 4
    assert receptive_field(spec) == (12, 4)
    assert receptive_field(pooled_nets([24], channels=2)[0]) == (12, 4)


@pytest.mark.parametrize(("violation", "factor"), [("variance-grows", None), ("fan-in-miscounted", 3.0)])
def test_planted_nets_break_h3_as_described(violation, factor):
    for spec in planted_dense_nets([27, 300], (8,), violation):
        assert h3_violation_fraction(spec) > 0
        assert predicted_logit_grad_sq(spec, variance="he") == pytest.approx(2.0, rel=1e-12)
        init = predicted_logit_grad_sq(spec, variance="init")
        expected = 2.0 * (spec.d / math.isqrt(spec.d) if factor is None else spec.d / (spec.d // 3))
        assert init == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"seeds": 0}, "--seeds"),
        ({"pooled_seeds": 0}, "--pooled-seeds"),
        ({"draws": 1}, "--draws"),
        ({"cases": ("nope",)}, "nope"),
        ({"pooled_dims": (16, 24)}, "receptive field"),
        ({"pooled_dims": (26, 30)}, "multiples of 4"),
        ({"dense_dims": (8, 16, 32, 64)}, "at least 5"),
        ({"margin": 0.0}, "--margin"),
        ({"n_boot": 10}, "--n-boot"),
        ({"lemma9_draws": 5}, "--lemma9-draws"),
        ({"first_seed": -1}, "--seed"),
    ],
)
def test_config_refuses_bad_settings(kw, needle):
    with pytest.raises(InputError, match=needle):
        CalibrateConfig(**kw)


def _row(case, seed, covered, verdict, flagged=None):
    return dict(
        zip(
            RECORD_COLUMNS,
            [case, seed, math.nan, "t", 0.0, 0.0, -1.0, 1.0, verdict, covered, flagged],
        )
    )


def test_summaries_count_coverage_false_verdicts_and_detections():
    rows = [_row("dense-slope", s, s < 190, "inconsistent" if s < 2 else "consistent") for s in range(200)]
    rows += [_row("variance-grows", s, True, "inconsistent", flagged=s != 3) for s in range(10)]
    cfg = CalibrateConfig(seeds=200, planted_seeds=10, cases=("dense-slope", "variance-grows"))
    result = summarise(pd.DataFrame(rows, columns=list(RECORD_COLUMNS)), cfg)
    (cov,) = result.coverage
    assert (cov.coverage.successes, cov.coverage.trials) == (190, 200)
    assert (cov.false_inconsistent.successes, cov.false_inconsistent.trials) == (2, 200)
    # 0.95 [0.91, 0.976]: reaches below the goal 0.92, so not settled
    assert cov.coverage_claim.verdict is Verdict.INCONCLUSIVE
    assert cov.false_claim.verdict is Verdict.INCONCLUSIVE  # 0.01 [0.001, 0.036] straddles 0.025
    (det,) = result.detection
    assert (det.detection.successes, det.detection.trials) == (9, 10)
    assert det.claim.verdict is Verdict.INCONSISTENT  # missed once: not flagged in every seed
    assert len(result.claims) == 3


def test_a_small_run_flags_the_planted_violations_and_covers_the_truths():
    cfg = CalibrateConfig(
        seeds=2,
        planted_seeds=2,
        draws=30,
        dense_dims=(16, 32, 64, 128, 256),
        dense_widths=(8,),
        n_boot=300,
        cases=("dense-mean", "dense-slope", "variance-grows", "fan-in-miscounted"),
    )
    result = check_calibrate(cfg)
    assert [d.detection.estimate for d in result.detection] == [1.0, 1.0]
    assert {c.name: c.coverage.trials for c in result.coverage} == {"dense-mean": 10, "dense-slope": 2}
    # with E||d_x f_c||^2 = 2 exactly, no verdict may be 'inconsistent' here
    assert all(c.false_inconsistent.successes == 0 for c in result.coverage)
    fan = result.detection[1]
    assert fan.extra is not None
    assert fan.extra.successes == 2  # MC agrees with Eq. 13 under the variances really drawn
