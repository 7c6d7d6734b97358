"""``check_first_order``: the Monte Carlo, the summaries (pure functions of records) and the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from graphs.errors import InputError
from graphs.spec import build_spec
from verify.checks.first_order import (
    FirstOrderConfig,
    check_first_order,
    largest_eps_within,
    lemma2_table,
    logit_gram,
    measure_first_order,
    pgd_limits,
    remark1_table,
    snr_spread,
)
from verify.model import sample_params
from verify.results import Interval, Verdict
from verify.sampling import input_gradients, sample_inputs, sample_labels
from verify.stats import bound_verdict, t_interval
from verify.theory import eps_for_norm

EPS = (1e-4, 1e-3, 1e-2, 1e-1)
COLUMNS = ["arch", "dim", "d", "draw", "input", "quantity", "norm", "attack", "eps_inf", "eps", "value"]


def _specs(*dims, widths=(32, 32)):
    return tuple(build_spec("dense", d, widths=widths) for d in dims)


@pytest.fixture(scope="module")
def small_run():
    # 30 PGD steps converge, so PGD's small-eps limit is 1 as well.
    config = FirstOrderConfig(_specs(16, 64), eps_inf=EPS, draws=6, batch=8, seed=5, pgd_steps=30, n_boot=500)
    return check_first_order(config)


# ----------------------------------------------------------------------------- config


def test_eps_rescaling():
    assert eps_for_norm(1e-3, math.inf, 400) == 1e-3
    assert eps_for_norm(1e-3, 2.0, 400) == pytest.approx(2e-2, rel=1e-15)
    assert eps_for_norm(1e-3, 1.0, 400) == pytest.approx(0.4, rel=1e-15)


def test_config_normalises_eps_and_norms():
    c = FirstOrderConfig(_specs(16), eps_inf=(1e-2, 1e-3, 1e-2), norms=(2.0, "inf"))
    assert c.eps_inf == (1e-3, 1e-2)
    assert c.norms == ("2", "inf")
    s = c.settings()
    assert s["d"] == [16]
    assert s["norms"] == ["2", "inf"]
    assert s["pgd_steps"] == 7
    assert s["dtype"] == "float64"


@pytest.mark.parametrize(
    "change",
    [
        {"eps_inf": (1e-3,)},
        {"eps_inf": (0.0, 1e-3)},
        {"eps_inf": (-1e-3, 1e-2)},
        {"eps_inf": (math.nan, 1e-3)},
        {"eps_inf": ("abc", 1e-3)},
        {"norms": ("inf", "3")},
        {"norms": ("1",)},
        {"norms": ("inf", "inf")},
        {"norms": ()},
        {"draws": 1},
        {"batch": 0},
        {"seed": -1},
        {"dtype": "float16"},
        {"pgd_steps": 0},
        {"pgd_step_size": 0.0},
        {"pgd_step_size": math.inf},
        {"margin": 0.0},
        {"n_boot": 10},
        {"specs": ()},
        {"specs": (build_spec("dense", 16), build_spec("strided-cnn", 8))},
        {"specs": (build_spec("dense", 16, num_classes=1),)},
    ],
)
def test_config_rejects_bad_input(change):
    kwargs = {"specs": _specs(16), **change}
    with pytest.raises(InputError):
        FirstOrderConfig(**kwargs)


# ----------------------------------------------------------------------------- Monte Carlo


def test_records_schema_and_numbers_of_the_published_streams():
    config = FirstOrderConfig(_specs(8, widths=(8, 8)), eps_inf=(1e-3, 1e-2), draws=2, batch=3, seed=7)
    rec = measure_first_order(config)
    assert list(rec.columns) == COLUMNS
    assert rec.groupby("quantity").size()["increase"] == 2 * 2 * 2 * 2 * 3  # norms x attacks x eps x draws x inputs
    # Sums computed by the implementation these records replace (same streams, PGD start keyed by
    # (draw, norm code, eps index)): the published numbers must not move.
    sums = rec.groupby(["quantity", "attack"], dropna=False)["value"].sum()
    expected = {
        ("delta_l2", "one-step"): 0.9013523804664971,
        ("delta_l2", "pgd"): 0.35055575539536676,
        ("grad_l1", None): 13.543531366766455,
        ("grad_l2_sq", None): 6.554754130448162,
        ("increase", "one-step"): 0.3229303990128871,
        ("increase", "pgd"): 0.28416351556584085,
        ("logit_grad_cos", None): -0.13048311342545704,
        ("logit_grad_sq", None): 13.040895848291804,
        ("prediction", "pgd"): 0.32083803015876167,
        ("prop3_diff", None): 0.0010461844270641674,
        ("q_term", None): 5.346078412001291,
        ("x_l2", None): 16.918910395735267,
    }
    got = {(q, None if not isinstance(a, str) else a): v for (q, a), v in sums.items()}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_a_draw_is_the_same_whatever_the_number_of_draws():
    small = FirstOrderConfig(_specs(8, widths=(8, 8)), eps_inf=(1e-3, 1e-2), draws=2, batch=2, seed=1)
    large = FirstOrderConfig(_specs(8, widths=(8, 8)), eps_inf=(1e-3, 1e-2), draws=3, batch=2, seed=1)
    a = measure_first_order(small)
    b = measure_first_order(large)
    b = b[b["draw"] < 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_logit_gram_reconstructs_loss_gradient_norm():
    # Eq. 9: d_x L = sum_k (q_k - 1[k=c]) d_x f_k, so ||d_x L||^2 = a^T Gram a (float64).
    spec = build_spec("strided-cnn", 8, channels=4, strides=(1, 2))
    params = sample_params(spec, 2, 0, dtype=torch.float64)
    x = sample_inputs(spec, 2, 0, 5, dtype=torch.float64)
    labels = sample_labels(spec, 2, 0, 5)
    ig = input_gradients(spec, params, x, labels)
    a = torch.softmax(ig.logits, 1) - torch.nn.functional.one_hot(labels, spec.num_classes).double()
    gram = logit_gram(spec, params, x)
    quad = torch.einsum("bk,bkj,bj->b", a, gram, a)
    torch.testing.assert_close(quad, ig.loss_grad.flatten(1).pow(2).sum(1), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        torch.diagonal(gram, dim1=1, dim2=2)[torch.arange(5), labels],
        ig.logit_grad.flatten(1).pow(2).sum(1),
        rtol=1e-12,
        atol=0,
    )


# ----------------------------------------------------------------------------- a real small run


def test_lemma2_ratio_tends_to_one_on_small_net(small_run):
    table = small_run.lemma2
    assert len(table) == 2 * 2 * 2 * len(EPS)
    for (d, norm, attack), grp in table.groupby(["d", "norm", "attack"]):
        dev = (grp.sort_values("eps_inf")["ratio"] - 1).abs().to_numpy()
        # A converged PGD (30 steps) and the one-step attack both match eps ||g||_q as eps -> 0.
        assert dev[0] < 2e-3, (d, norm, attack, dev)
        assert dev[0] < dev[-1], (d, norm, attack, dev)
    for c in small_run.claims:
        if c.name.startswith("lemma2"):
            assert c.verdict is Verdict.CONSISTENT, c
            assert c.predicted == pytest.approx(1.0, abs=1e-4)  # the converged PGD's linear limit too
    assert small_run.within["largest_eps_inf"].notna().all()


def test_lemma2_interval_is_the_t_interval_of_per_draw_ratios(small_run):
    rec = small_run.records
    sel = (rec["d"] == 16) & (rec["norm"] == "inf") & (rec["attack"] == "one-step") & (rec["eps_inf"] == 1e-2)
    per = rec[sel].groupby(["quantity", "draw"])["value"].mean()
    m, iv = t_interval((per["increase"] / per["prediction"]).to_numpy())
    row = small_run.lemma2[
        (small_run.lemma2["d"] == 16) & (small_run.lemma2["norm"] == "inf") & (small_run.lemma2["attack"] == "one-step")
    ].set_index("eps_inf")
    assert row.loc[1e-2, "ratio"] == pytest.approx(m, rel=1e-14)
    assert (row.loc[1e-2, "ci_low"], row.loc[1e-2, "ci_high"]) == pytest.approx((iv.low, iv.high), rel=1e-14)


def test_prop3_and_snr_on_small_net(small_run):
    for c in small_run.claims:
        if c.name.startswith("prop3"):
            assert c.verdict is Verdict.CONSISTENT, c
            assert c.interval.method.startswith("BCa")
            assert "paired" in c.interval.method
    for _, grp in small_run.prop3.groupby(["d", "norm"]):
        v = grp.sort_values("eps")["diff_over_eps"].to_numpy()
        assert v[0] < v[-1] / 100
    snr = small_run.snr
    one = snr[(snr["attack"] == "one-step") & snr["norm"].isin(["inf", "2"])]
    # ||delta||_2 = eps_inf sqrt(d) exactly for both: SNR x eps_inf = E||x||_2 / sqrt(d), about 1.
    for _, grp in one.groupby("d"):
        v = grp["snr_times_eps_inf"].to_numpy()
        np.testing.assert_allclose(v, v[0], rtol=1e-12)
    l1 = snr[snr["norm"] == "1"].groupby("d")["snr_times_eps_inf"].mean()
    assert l1.loc[64] / l1.loc[16] == pytest.approx(0.5, rel=0.15)  # falls like 1/sqrt(d)
    (spread,) = [c for c in small_run.claims if c.name == "eq3 snr"]
    assert spread.verdict is Verdict.CONSISTENT
    assert spread.estimate >= 1


# ----------------------------------------------------------------------------- summaries on synthetic records


def _synthetic(
    config: FirstOrderConfig,
    *,
    one_step: float = 1.0,
    order: float = 2.0,
    remark: float = 1.0,
    noise: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """Records of every quantity with known answers: one-step ratio ``one_step``, PGD ratio its
    linear-model limit, Prop. 3's difference ~ eps^order, ||d_x L||^2 = remark * G * q-term."""
    rng = np.random.default_rng(seed)
    limits = pgd_limits(config)
    rows = []

    def add(spec, draw, quantity, values, norm=None, attack=None, eps_inf=math.nan, eps=math.nan):
        for i, v in enumerate(values):
            rows.append((spec.family, spec.dim, spec.d, draw, i, quantity, norm, attack, eps_inf, eps, float(v)))

    b = config.batch
    for spec in config.specs:
        d = spec.d
        for draw in range(config.draws):
            scale = 1 + noise * rng.standard_normal()  # a draw-level effect, shared by its inputs
            add(spec, draw, "x_l2", math.sqrt(d) * (1 + noise * rng.standard_normal(b)))
            q = rng.uniform(0.5, 1.5, b)
            g = 2.0 * scale * (1 + noise * rng.standard_normal(b))
            add(spec, draw, "q_term", q)
            add(spec, draw, "logit_grad_sq", g)
            add(spec, draw, "grad_l2_sq", remark * g * q)
            add(spec, draw, "logit_grad_cos", noise * rng.standard_normal(b))
            for e_inf in config.eps_inf:
                add(spec, draw, "delta_l2", [e_inf * d] * b, "1", "one-step", e_inf, e_inf * d)
                for norm in config.norms:
                    e_p = eps_for_norm(e_inf, math.inf if norm == "inf" else 2.0, d)
                    pred = e_p * scale * (1 + noise * rng.standard_normal(b))
                    for attack, ratio in (("one-step", one_step), ("pgd", limits[d][norm])):
                        add(spec, draw, "prediction", pred, norm, attack, e_inf, e_p)
                        add(
                            spec,
                            draw,
                            "increase",
                            ratio * pred * (1 + noise * rng.standard_normal(b)),
                            norm,
                            attack,
                            e_inf,
                            e_p,
                        )
                        add(spec, draw, "delta_l2", [e_inf * math.sqrt(d)] * b, norm, attack, e_inf, e_p)
                    diff = scale * e_p**order * (1 + noise * rng.standard_normal(b))
                    add(spec, draw, "prop3_diff", diff, norm, None, e_inf, e_p)
    return pd.DataFrame(rows, columns=COLUMNS)


def _verdicts(result, prefix: str) -> set[Verdict]:
    return {c.verdict for c in result.claims if c.name.startswith(prefix)}


def _config(**kw):
    return FirstOrderConfig(
        _specs(16, 64, widths=(8,)), eps_inf=(1e-3, 1e-2, 1e-1), draws=20, batch=4, n_boot=500, **kw
    )


def test_synthetic_records_that_follow_the_statements_are_consistent():
    config = _config()
    result = check_first_order(config, records=_synthetic(config))
    assert len(result.claims) == 2 * 2 * 2 + 2 * 2 + 1 + 2
    assert {c.verdict for c in result.claims} == {Verdict.CONSISTENT}
    (snr,) = [c for c in result.claims if c.name == "eq3 snr"]
    assert snr.estimate == pytest.approx(1.0, abs=0.02)
    for c in result.claims:
        if c.name.startswith("prop3"):
            assert c.estimate == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize(
    ("change", "prefix", "verdict"),
    [
        ({"one_step": 0.5}, "lemma2 one-step", Verdict.INCONSISTENT),
        ({"one_step": 1.1, "noise": 0.3}, "lemma2 one-step", Verdict.INCONCLUSIVE),
        ({"order": 0.5}, "prop3", Verdict.INCONSISTENT),
        ({"order": 1.0, "noise": 0.3}, "prop3", Verdict.INCONCLUSIVE),
        ({"remark": 1.5}, "remark1", Verdict.INCONSISTENT),
    ],
)
def test_synthetic_records_that_break_a_statement(change, prefix, verdict):
    config = _config()
    result = check_first_order(config, records=_synthetic(config, **change))
    assert _verdicts(result, prefix) == {verdict}


def test_remark1_regression_is_exact_on_a_proportional_relation():
    config = _config()
    table = remark1_table(_synthetic(config, remark=1.0, noise=0.0), n_boot=200)
    np.testing.assert_allclose(table["slope"], 2.0, rtol=1e-10)
    np.testing.assert_allclose(table["slope_origin"], 2.0, rtol=1e-12)
    np.testing.assert_allclose(table["intercept"], 0.0, atol=1e-10)
    np.testing.assert_allclose(table["ratio"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(table["r2"], 1.0, rtol=1e-10)


def test_snr_spread_is_one_for_exact_pixel_sized_attacks():
    config = _config()
    spread, _ = snr_spread(_synthetic(config, noise=0.0))
    assert spread == pytest.approx(1.0, rel=1e-12)


def test_largest_eps_within_stops_at_the_first_miss():
    table = pd.DataFrame(
        {
            "arch": "dense",
            "d": 16,
            "norm": "inf",
            "attack": "one-step",
            "eps_inf": [1e-3, 1e-2, 1e-1],
            "eps": [1e-3, 1e-2, 1e-1],
            "ratio": [1.0, 1.05, 0.8],
            "ci_low": [0.99, 0.96, 0.7],
            "ci_high": [1.01, 1.12, 0.9],
        }
    )
    out = largest_eps_within(table, {(16, "inf", "one-step"): 1.0}, 0.1)
    assert out["largest_eps_inf"].iloc[0] == 1e-3
    out = largest_eps_within(table, {(16, "inf", "one-step"): 1.05}, 0.1)
    assert out["largest_eps_inf"].iloc[0] == 1e-2
    assert math.isnan(largest_eps_within(table, {(16, "inf", "one-step"): 2.0}, 0.1)["largest_eps_inf"].iloc[0])


def test_lemma2_table_is_a_pure_function_of_records():
    config = _config()
    rec = _synthetic(config)
    pd.testing.assert_frame_equal(lemma2_table(rec), lemma2_table(rec.sample(frac=1.0, random_state=3)))


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (1.2, 1.8, Verdict.CONSISTENT),
        (0.2, 0.8, Verdict.INCONSISTENT),
        (0.8, 1.2, Verdict.INCONCLUSIVE),
        (1.0, 1.5, Verdict.INCONCLUSIVE),
        (math.nan, 1.5, Verdict.INCONCLUSIVE),
    ],
)
def test_bound_verdict(low, high, verdict):
    assert bound_verdict(Interval(low, high), 1.0) is verdict
    flipped = {Verdict.CONSISTENT: Verdict.INCONSISTENT, Verdict.INCONSISTENT: Verdict.CONSISTENT}.get(verdict, verdict)
    assert bound_verdict(Interval(low, high), 1.0, above=False) is flipped
