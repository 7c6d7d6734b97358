"""First-order checks at initialisation: Lemma 2 against real attacks, Prop. 3, Eq. 3 and Remark 1.

``measure_first_order`` runs the Monte Carlo and returns long-format records (one row per
draw, sample and quantity); the ``summarise_*`` functions turn records into tables and fits.
Weight draws are the independent unit: every interval resamples or averages over draws,
never over the samples of one draw (they share the weights).

Attack sizes are given as eps_inf and rescaled per norm with Eq. 3: eps_p = eps_inf d^(1/p).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from graphs.rng import Stream, generator_for, numpy_rng
from graphs.spec import Spec
from verify.attacks import (
    dual_norm,
    lp_norm,
    norm_label,
    optimal_attack,
    parse_norm,
    pgd_attack,
)
from verify.fit import ols_slope
from verify.losses import cross_entropy_loss, prop3_difference
from verify.model import forward, sample_params
from verify.sampling import input_gradients, sample_inputs, sample_labels

__all__ = [
    "RECORD_COLUMNS",
    "eps_for_norm",
    "logit_gram",
    "measure_first_order",
    "pgd_linear_efficiency",
    "summarise_lemma2",
    "largest_eps_within",
    "summarise_prop3",
    "summarise_snr",
    "summarise_remark1",
]

RECORD_COLUMNS = ["arch", "dim", "d", "draw", "sample", "norm", "attack", "eps_inf", "eps", "quantity", "value"]

# PGD's random start of (draw, norm, eps index) draws from Stream.PGD_START with keys
# (draw, _NORM_CODE[norm], eps index); the codes are part of the published numbers.
_NORM_CODE = {"inf": 0, "2": 1, "1": 2}
_GRAM_BUDGET_BYTES = 1 << 27


def eps_for_norm(eps_inf: float, p: float, d: int) -> float:
    """Eq. 3: eps_p = eps_inf * d^(1/p)."""
    p = parse_norm(p)
    return float(eps_inf) if math.isinf(p) else float(eps_inf) * d ** (1.0 / p)


def logit_gram(spec: Spec, params, x: torch.Tensor) -> torch.Tensor:
    """Per-sample Gram matrix ``<d_x f_k, d_x f_j>`` of the K logit gradients, shape (B, K, K).

    K backward passes; the batch is cut in chunks so that the K stored gradients stay under
    ~128 MB whatever the input size.
    """
    k = spec.num_classes
    per_sample = k * spec.d * x.element_size()
    chunk = max(1, _GRAM_BUDGET_BYTES // per_sample)
    out = []
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk].detach().requires_grad_(True)
        with torch.enable_grad():
            logits = forward(spec, params, xb)
            grads = []
            for j in range(k):
                (gj,) = torch.autograd.grad(logits[:, j].sum(), xb, retain_graph=j < k - 1)
                grads.append(gj.reshape(gj.shape[0], -1))
        jac = torch.stack(grads, dim=1)  # (b, K, d)
        out.append(jac @ jac.transpose(1, 2))
    return torch.cat(out, dim=0).detach()


def _rows(frame: dict, base: dict, quantity: str, values: torch.Tensor | np.ndarray, **keys) -> None:
    v = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    n = v.shape[0]
    row = {**base, "norm": None, "attack": None, "eps_inf": np.nan, "eps": np.nan, **keys}
    for col in RECORD_COLUMNS:
        if col == "sample":
            frame[col].append(np.arange(n))
        elif col == "quantity":
            frame[col].append(np.full(n, quantity, dtype=object))
        elif col == "value":
            frame[col].append(v)
        else:
            frame[col].append(np.full(n, row[col], dtype=object if isinstance(row[col], str | None) else None))


def measure_first_order(
    specs: Sequence[Spec],
    *,
    eps_inf: Sequence[float],
    norms: Sequence[float | str] = ("inf", "2"),
    samples: int = 16,
    batch: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    pgd_steps: int = 7,
    pgd_step_size: float = 0.2,
    progress: bool = True,
) -> pd.DataFrame:
    """Monte Carlo over ``samples`` weight draws per spec, ``batch`` inputs per draw.

    Quantities (per sample): ``loss``, ``x_l2``, ``grad_l1``, ``grad_l2``, ``grad_linf``;
    Remark 1: ``q_term`` = (1-q_c)^2 + sum_{k!=c} q_k^2, ``grad_l2_sq``, ``logit_grad_sq``
    (mean over k of ||d_x f_k||_2^2), ``logit_grad_cos`` (mean over k != j of the cosine);
    per norm and eps (attack ``one-step`` or ``pgd``): ``increase`` = L(x + delta) - L(x),
    ``prediction`` = eps_p ||d_x L||_q, ``delta_l2``; per norm and eps: ``prop3_diff`` =
    L~ - L_eps (signed). For norm 1 only ``delta_l2`` of the optimal attack (Eq. 3 contrast).
    """
    ps = [parse_norm(p) for p in norms]
    frame: dict[str, list] = {c: [] for c in RECORD_COLUMNS}
    total = len(specs) * samples
    bar = tqdm(total=total, desc="first-order", disable=not progress, leave=False)
    try:
        for spec in specs:
            d = spec.d
            for draw in range(samples):
                base = {"arch": spec.family, "dim": spec.dim, "d": d, "draw": draw}
                params = sample_params(spec, seed, draw, dtype=dtype, device=device)
                x = sample_inputs(spec, seed, draw, batch, dtype=dtype, device=device)
                labels = sample_labels(spec, seed, draw, batch, device=device)
                loss_fn = cross_entropy_loss(spec, params, labels)
                ig = input_gradients(spec, params, x, labels)
                g, loss0 = ig.loss_grad, ig.loss
                _rows(frame, base, "loss", loss0)
                _rows(frame, base, "x_l2", lp_norm(x, 2.0))
                for name, p in (("grad_l1", 1.0), ("grad_l2", 2.0), ("grad_linf", math.inf)):
                    _rows(frame, base, name, lp_norm(g, p))

                q = torch.softmax(ig.logits, dim=1)
                err = q - torch.nn.functional.one_hot(labels, spec.num_classes).to(q.dtype)
                gram = logit_gram(spec, params, x)
                diag = torch.diagonal(gram, dim1=1, dim2=2)
                k = spec.num_classes
                cos = gram / torch.sqrt(diag.unsqueeze(2) * diag.unsqueeze(1))
                off = (cos.sum(dim=(1, 2)) - torch.diagonal(cos, dim1=1, dim2=2).sum(dim=1)) / (k * (k - 1))
                _rows(frame, base, "q_term", (err**2).sum(dim=1))
                _rows(frame, base, "grad_l2_sq", lp_norm(g, 2.0) ** 2)
                _rows(frame, base, "logit_grad_sq", diag.mean(dim=1))
                _rows(frame, base, "logit_grad_cos", off)

                for j, e_inf in enumerate(eps_inf):
                    e1 = eps_for_norm(e_inf, 1.0, d)
                    keys1 = {"norm": "1", "attack": "one-step", "eps_inf": float(e_inf), "eps": e1}
                    _rows(frame, base, "delta_l2", lp_norm(optimal_attack(g, 1.0, e1), 2.0), **keys1)
                    for p in ps:
                        label = norm_label(p)
                        e_p = eps_for_norm(e_inf, p, d)
                        keys = {"norm": label, "eps_inf": float(e_inf), "eps": e_p}
                        pred = e_p * dual_norm(g, p)
                        with torch.no_grad():
                            delta = optimal_attack(g, p, e_p)
                            inc = loss_fn(x + delta) - loss0
                        _rows(frame, base, "prediction", pred, attack="one-step", **keys)
                        _rows(frame, base, "increase", inc, attack="one-step", **keys)
                        _rows(frame, base, "delta_l2", lp_norm(delta, 2.0), attack="one-step", **keys)
                        gen = generator_for(Stream.PGD_START, seed, draw, _NORM_CODE[label], j)
                        delta = pgd_attack(loss_fn, x, p, e_p, steps=pgd_steps, step_size=pgd_step_size, generator=gen)
                        with torch.no_grad():
                            inc = loss_fn(x + delta) - loss0
                        _rows(frame, base, "prediction", pred, attack="pgd", **keys)
                        _rows(frame, base, "increase", inc, attack="pgd", **keys)
                        _rows(frame, base, "delta_l2", lp_norm(delta, 2.0), attack="pgd", **keys)
                        _rows(frame, base, "prop3_diff", prop3_difference(loss_fn, x, e_p, p, grad=g), **keys)
                bar.update(1)
    finally:
        bar.close()
    df = pd.DataFrame({c: np.concatenate(v) if v else [] for c, v in frame.items()})
    for col in ("dim", "d", "draw", "sample"):
        df[col] = df[col].astype(int)
    for col in ("eps_inf", "eps", "value"):
        df[col] = df[col].astype(float)
    return df


def pgd_linear_efficiency(
    p: float | str, d: int, *, steps: int = 7, step_size: float = 0.2, batch: int = 256, seed: int = 0
) -> float:
    """Mean fraction of the optimum ``eps ||g||_q`` that PGD reaches on a linear loss ``g . x``.

    The small-eps limit of PGD's Lemma 2 ratio on a smooth net: a PGD that converges gives 1,
    the paper's 7 x 0.2 eps schedule from a random start gives less (about 0.91 for l_inf).
    """
    p = parse_norm(p)
    gen = generator_for(Stream.LINEAR_PGD, seed)
    w = torch.randn((batch, d), generator=gen, dtype=torch.float64)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return (w * x).sum(dim=1)

    x = torch.zeros((batch, d), dtype=torch.float64)
    delta = pgd_attack(loss, x, p, 1.0, steps=steps, step_size=step_size, generator=gen)
    return float(((w * delta).sum(dim=1) / dual_norm(w, p)).mean())


def _t_interval(values: np.ndarray, level: float) -> tuple[float, float, float]:
    v = np.asarray(values, float)
    m = float(v.mean())
    if v.size < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half


def _per_draw(df: pd.DataFrame, quantity: str, keys: list[str]) -> pd.DataFrame:
    """Mean over the samples of each draw, one row per (keys, draw)."""
    sub = df[df["quantity"] == quantity]
    return sub.groupby([*keys, "draw"], as_index=False)["value"].mean()


def summarise_lemma2(df: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Lemma 2 ratio E[increase] / E[eps_p ||g||_q] per (arch, d, norm, attack, eps).

    Per draw the ratio of the batch means; mean and t-interval over draws.
    """
    keys = ["arch", "d", "norm", "attack", "eps_inf", "eps"]
    inc = _per_draw(df, "increase", keys)
    pred = _per_draw(df, "prediction", keys)
    both = inc.merge(pred, on=[*keys, "draw"], suffixes=("_inc", "_pred"))
    both["ratio"] = both["value_inc"] / both["value_pred"]
    rows = []
    for key, grp in both.groupby(keys, sort=True):
        m, lo, hi = _t_interval(grp["ratio"].to_numpy(), level)
        rows.append({**dict(zip(keys, key)), "ratio": m, "ci_low": lo, "ci_high": hi, "draws": len(grp)})
    return pd.DataFrame(rows)


def largest_eps_within(table: pd.DataFrame, tol: float = 0.1) -> pd.DataFrame:
    """Per (arch, d, norm, attack): the largest eps_inf such that at it and at every smaller eps
    the whole interval of the ratio lies within [1 - tol, 1 + tol] (NaN where none does)."""
    rows = []
    for key, grp in table.sort_values("eps_inf").groupby(["arch", "d", "norm", "attack"], sort=True):
        best = math.nan
        for _, r in grp.iterrows():
            if r["ci_low"] >= 1 - tol and r["ci_high"] <= 1 + tol:
                best = r["eps_inf"]
            else:
                break
        rows.append({"arch": key[0], "d": key[1], "norm": key[2], "attack": key[3], "largest_eps_inf": best})
    return pd.DataFrame(rows)



def summarise_prop3(
    df: pd.DataFrame, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prop. 3: ``|L~ - L_eps| / eps`` per eps (mean and t-interval over draws), and per
    (arch, d, norm) the order in eps: slope of log E|L~ - L_eps| against log eps, with a
    bootstrap interval over draws and the local slopes between consecutive eps.
    The proposition (difference o(eps)) holds when the order is above 1; smooth losses give 2.
    """
    sub = df[df["quantity"] == "prop3_diff"].copy()
    sub["value"] = sub["value"].abs()
    keys = ["arch", "d", "norm"]
    per_draw = sub.groupby([*keys, "eps_inf", "eps", "draw"], as_index=False)["value"].mean()
    rows, fits = [], []
    rng = numpy_rng(Stream.BOOTSTRAP, seed)
    for key, grp in per_draw.groupby(keys, sort=True):
        mat = grp.pivot(index="draw", columns="eps", values="value").sort_index(axis=1)
        eps = mat.columns.to_numpy(float)
        eps_inf = grp.drop_duplicates("eps").set_index("eps").loc[eps, "eps_inf"].to_numpy(float)
        m = mat.to_numpy(float)
        for j in range(len(eps)):
            mean, lo, hi = _t_interval(m[:, j] / eps[j], level)
            rows.append({**dict(zip(keys, key)), "eps_inf": eps_inf[j], "eps": eps[j], "diff_over_eps": mean,
                         "ci_low": lo, "ci_high": hi})
        fit = {**dict(zip(keys, key)), "order": math.nan, "ci_low": math.nan, "ci_high": math.nan, "local_orders": []}
        means = m.mean(axis=0)
        if len(eps) >= 2 and np.all(means > 0):
            le = np.log(eps)
            fit["order"] = float(ols_slope(le, np.log(means))[0])
            fit["local_orders"] = [float(v) for v in np.diff(np.log(means)) / np.diff(le)]
            idx = rng.integers(0, m.shape[0], size=(n_boot, m.shape[0]))
            boot = m[idx].mean(axis=1)
            ok = np.all(boot > 0, axis=1)
            if ok.any():
                s = ols_slope(le, np.log(boot[ok]))[0]
                fit["ci_low"], fit["ci_high"] = (float(v) for v in np.quantile(s, [(1 - level) / 2, (1 + level) / 2]))
        fits.append(fit)
    return pd.DataFrame(rows), pd.DataFrame(fits)


def summarise_snr(df: pd.DataFrame) -> pd.DataFrame:
    """Eq. 3 / Appendix C: mean ``||x||_2 / ||delta||_2`` per (arch, d, norm, attack, eps) and the
    same times eps_inf (dimension- and eps-free if the rescaling preserves the SNR)."""
    x = df[df["quantity"] == "x_l2"][["arch", "d", "draw", "sample", "value"]]
    dl = df[df["quantity"] == "delta_l2"]
    both = dl.merge(x, on=["arch", "d", "draw", "sample"], suffixes=("", "_x"))
    both["snr"] = both["value_x"] / both["value"]
    out = both.groupby(["arch", "d", "norm", "attack", "eps_inf"], as_index=False)["snr"].mean()
    out["snr_times_eps_inf"] = out["snr"] * out["eps_inf"]
    return out


def summarise_remark1(
    df: pd.DataFrame, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Remark 1 / Eq. 9-10, per (arch, d): regress ``||d_x L||_2^2`` on ``(1-q_c)^2 + sum_{k!=c} q_k^2``
    over all samples. If the K logit gradients are uncorrelated with equal mean square norm
    G, E[||d_x L||^2 | q] = G * q_term, so the slope (and the slope through the origin) should
    equal the directly measured mean ``||d_x f_k||_2^2``. Intervals: bootstrap over draws
    (regressions), t over draws (direct mean, mean cosine between distinct logit gradients).
    """
    rng = numpy_rng(Stream.BOOTSTRAP, seed)
    piv = df[df["quantity"].isin(["q_term", "grad_l2_sq", "logit_grad_sq", "logit_grad_cos"])].pivot_table(
        index=["arch", "d", "draw", "sample"], columns="quantity", values="value"
    )
    rows = []
    for (arch, d), grp in piv.groupby(level=[0, 1], sort=True):
        grp = grp.reset_index()
        draws = np.sort(grp["draw"].unique())
        # Per-draw sufficient statistics make every bootstrap refit a few sums.
        stats_ = np.array(
            [
                [len(s), s["q_term"].sum(), s["grad_l2_sq"].sum(), (s["q_term"] ** 2).sum(),
                 (s["q_term"] * s["grad_l2_sq"]).sum(), (s["grad_l2_sq"] ** 2).sum()]
                for _, s in grp.groupby("draw", sort=True)
            ]
        )

        def fit(tot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            n, sx, sy, sxx, sxy = (tot[..., i] for i in range(5))
            slope = (sxy - sx * sy / n) / (sxx - sx * sx / n)
            return slope, (sy - slope * sx) / n, sxy / sxx

        tot = stats_.sum(axis=0)
        slope, intercept, origin = (float(v) for v in fit(tot))
        n, sx, sy, sxx, sxy, syy = tot
        r2 = (sxy - sx * sy / n) ** 2 / ((sxx - sx * sx / n) * (syy - sy * sy / n))
        idx = rng.integers(0, len(draws), size=(n_boot, len(draws)))
        b_slope, _, b_origin = fit(stats_[idx].sum(axis=1))
        qs = [(1 - level) / 2, (1 + level) / 2]
        per_draw = grp.groupby("draw")[["logit_grad_sq", "logit_grad_cos"]].mean()
        direct, dlo, dhi = _t_interval(per_draw["logit_grad_sq"].to_numpy(), level)
        cos, clo, chi = _t_interval(per_draw["logit_grad_cos"].to_numpy(), level)
        rows.append(
            {
                "arch": arch, "d": int(d), "slope": slope,
                "slope_ci_low": float(np.quantile(b_slope, qs[0])), "slope_ci_high": float(np.quantile(b_slope, qs[1])),
                "intercept": intercept, "r2": float(r2), "slope_origin": origin,
                "origin_ci_low": float(np.quantile(b_origin, qs[0])), "origin_ci_high": float(np.quantile(b_origin, qs[1])),
                "logit_grad_sq": direct, "logit_grad_sq_ci_low": dlo, "logit_grad_sq_ci_high": dhi,
                "logit_grad_cos": cos, "cos_ci_low": clo, "cos_ci_high": chi,
                "q_term_mean": float(grp["q_term"].mean()), "q_term_sd": float(grp["q_term"].std(ddof=1)),
                "samples": int(len(grp)),
            }
        )
    return pd.DataFrame(rows)
