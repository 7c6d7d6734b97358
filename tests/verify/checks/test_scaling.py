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


@pytest.fixture(scope="module")
def five_sizes():
    return check_scaling(
        _dense((16, 32, 64, 128, 256), draws=32, batch=2, seed=2, quantities=("logit_grad_l2", "vuln_l2"))
    )


def test_squared_norm_gets_its_exact_curve_and_per_size_agreement(five_sizes):
    names = [q.prediction.quantity for q in five_sizes.quantities]
    assert names == ["logit_grad_l2", "logit_grad_l2_sq", "vuln_l2"]
    sq = five_sizes.quantity("logit_grad_l2_sq")
    assert sq.exact is not None
    # Lemma 7: 2 at every size for every net without pooling, with either variance
    assert sq.exact.values == pytest.approx([2.0] * 5, rel=1e-12)
    assert sq.exact.he == pytest.approx([2.0] * 5, rel=1e-12)
    assert sq.exact.slope == pytest.approx(0.0, abs=1e-12)
    assert sq.exact.asymptotic_slope == pytest.approx(0.0, abs=1e-10)
    root = five_sizes.quantity("logit_grad_l2").exact
    assert root is not None
    assert root.values == pytest.approx([2**0.5] * 5, rel=1e-12)
    assert five_sizes.quantity("vuln_l2").exact is None  # the softmax leaves it without an exact value
    assert len(five_sizes.moments) == 5
    for m in five_sizes.moments:
        assert m.init == pytest.approx(2.0, rel=1e-12)
        assert m.mc_sq_interval.finite
    # E||d_x f_c||^2 = 2 exactly for dense nets: Monte Carlo must not contradict it
    assert five_sizes.moments_claim is not None
    assert five_sizes.moments_claim.verdict is not Verdict.INCONSISTENT
    assert five_sizes.moments_mean is not None
    assert five_sizes.moments_mean.paired  # draw i of every size comes from the streams (seed, i)


def test_five_sizes_give_an_asymptotic_fit_and_claim(five_sizes):
    assert five_sizes.asymptotic_note == ""
    assert five_sizes.finite_size[0] == -1.0  # no border: 1/d corrections
    names = [c.name for c in five_sizes.claims]
    assert names == [
        "logit_grad_l2",
        "logit_grad_l2_sq",
        "vuln_l2",
        "logit_grad_l2_asymptotic",
        "logit_grad_l2_sq_asymptotic",
        "vuln_l2_asymptotic",
        "second_moments",
    ]
    for q in five_sizes.quantities:
        assert q.asymptotic is not None
        assert q.asymptotic.exponent == -1.0
        assert q.asymptotic.interval.contains(q.prediction.slope), (q.prediction.quantity, q.asymptotic.interval)


def test_padded_borders_get_the_square_root_correction():
    from verify.theory import finite_size_exponent

    assert finite_size_exponent(build_spec("strided-cnn", 16, padding="zeros"))[0] == -0.5
    assert finite_size_exponent(build_spec("strided-cnn", 64, padding="reflect"))[0] == -0.5
    assert finite_size_exponent(build_spec("strided-cnn", 16, padding="circular"))[0] == -1.0
    assert finite_size_exponent(build_spec("dense", 16))[0] == -1.0


def test_zero_padding_exact_curve_is_eq13_with_the_init_variances():
    from graphs.moments import predicted_logit_grad_sq
    from verify.checks.scaling import size_status

    specs = [build_spec("strided-cnn", n, channels=4, strides=(1, 2)) for n in (6, 8)]
    for spec in specs:
        st = size_status(spec)
        assert st.he_sq == pytest.approx(2.0, rel=1e-12)
        assert st.init_sq == pytest.approx(predicted_logit_grad_sq(spec, variance="init"), rel=1e-15)
        assert st.init_sq < 2.0  # the border's neurons read zeros their variance still divides by
