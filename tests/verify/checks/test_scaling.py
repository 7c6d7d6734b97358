"""verify.checks.scaling from Python: config validation, claims, the hypotheses next to them."""

from __future__ import annotations

import pytest

from graphs.errors import InputError
from graphs.spec import build_spec
from verify.checks.scaling import ScalingConfig, SizeStatus, check_scaling, hypothesis_status
from verify.results import Verdict


def _dense(dims=(64, 256, 1024), **kw):
    return ScalingConfig(tuple(build_spec("dense", d, widths=(64, 64)) for d in dims), **kw)


@pytest.fixture(scope="module")
def dense_result():
    return check_scaling(_dense(draws=64, batch=2, seed=1))


def test_dense_nets_satisfy_every_prediction(dense_result):
    # (H) and (S) hold exactly for dense nets; these predictions are exact, and 64 draws settle them.
    verdicts = {c.name: c.verdict for c in dense_result.claims}
    for q in ("loss_grad_l1", "logit_grad_l2", "logit_grad_coord", "vuln_linf", "vuln_l2"):
        assert verdicts[q] is Verdict.CONSISTENT, (q, verdicts[q])
    assert dense_result.hypotheses.broken == ()
    assert all(c.hypotheses_broken == () for c in dense_result.claims)
    assert set(dense_result.records.columns) == {"arch", "dim", "d", "draw", "input", "quantity", "value"}


def test_records_from_elsewhere_give_the_same_result(dense_result):
    again = check_scaling(dense_result.config, records=dense_result.records, status=dense_result.status)
    assert [c.to_dict() for c in again.claims] == [c.to_dict() for c in dense_result.claims]


def _status(dim, symmetric, lo, hi, h3=0.0):
    return SizeStatus(dim, 3 * dim * dim, symmetric, "randomised", 0.0, h3, lo, hi, ())


def test_bounded_path_sums_stand_in_for_symmetry():
    stable = [_status(32, False, 0.2775, 1.9731), _status(64, False, 0.2775, 1.9731)]
    assert hypothesis_status(stable).bounded
    assert hypothesis_status(stable).broken == ("(S)",)
    drifting = [_status(32, False, 0.5, 1.5), _status(64, False, 0.25, 3.0)]
    assert not hypothesis_status(drifting).bounded
    assert "(S-bounded)" in hypothesis_status(drifting).broken
    h3 = [_status(32, True, 1, 1, h3=0.1), _status(64, True, 1, 1, h3=0.05)]
    assert hypothesis_status(h3).broken == ("H3",)
    assert hypothesis_status(h3).h3_fraction == 0.1


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"dims": (64,)}, "two sizes"),
        ({"draws": 1}, "--draws"),
        ({"quantities": ("nope",)}, "nope"),
        ({"inputs": "uniform"}, "--inputs"),
        ({"margin": 0.0}, "--margin"),
    ],
)
def test_config_refuses_bad_settings(kw, needle):
    dims = kw.pop("dims", (64, 256))
    with pytest.raises(InputError, match=needle):
        _dense(dims, **kw)


def test_sizes_are_sorted_by_d():
    cfg = _dense((1024, 64, 256))
    assert [s.d for s in cfg.specs] == [64, 256, 1024]
    assert cfg.settings()["dims"] == [64, 256, 1024]
