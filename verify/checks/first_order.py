"""Lemma 2 against real attacks, Proposition 3, Eq. 3's signal-to-noise ratio and Remark 1.

``check_first_order(config)`` samples He-initialised nets (weight draws, the independent unit
of every interval; ``batch`` standard normal inputs and uniform labels per draw), attacks
every input with the optimal one-step attack and with PGD at several budgets, and records
per input (long format, through the one Monte Carlo loop ``verify.montecarlo``):

- ``loss``, ``x_l2``, ``grad_l1``, ``grad_l2``, ``grad_linf``;
- Remark 1: ``q_term`` = (1 - q_c)^2 + sum_{k != c} q_k^2, ``grad_l2_sq``, ``logit_grad_sq``
  (mean over k of ||d_x f_k||_2^2), ``logit_grad_cos`` (mean cosine of two distinct logit
  gradients);
- per norm p, eps_inf and attack (``one-step`` or ``pgd``): ``increase`` = L(x + delta) - L(x),
  ``prediction`` = eps_p ||d_x L||_q, ``delta_l2``; per norm and eps_inf: ``prop3_diff`` =
  L~_eps - L_eps (signed); for p = 1 only ``delta_l2`` of the optimal attack (Eq. 3's contrast).

Attack budgets are eps_inf rescaled per norm with Eq. 3 (``verify.theory.eps_for_norm``). The
summaries are pure functions of the records, so a notebook can recompute them from stored
records; every interval and verdict comes from ``verify.stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence, cast

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.spec import Spec
from verify.checks.common import check_fit, check_sampling, spec_settings
from verify.progress import Progress, as_progress
from verify.results import Claim, Interval, Verdict
from verify.stats import (
    DEFAULT_LEVEL,
    DEFAULT_N_BOOT,
    band_verdict,
    bootstrap_interval,
    bound_verdict,
    fit_power_law,
    same_draws,
    t_interval,
)
from verify.theory import LEMMA2_RATIO, PROP3_ORDER_BOUND, REMARK1_RATIO, SNR_SPREAD

__all__ = [
    "ATTACKS",
    "DTYPES",
    "FirstOrderConfig",
    "FirstOrderResult",
    "check_first_order",
    "claims_of",
    "largest_eps_within",
    "lemma2_table",
    "logit_gram",
    "measure_first_order",
    "pgd_limits",
    "prop3_tables",
    "remark1_table",
    "snr_spread",
    "snr_table",
]

ATTACKS = ("one-step", "pgd")
DTYPES = ("float64", "float32")
KEY_COLUMNS = ("norm", "attack", "eps_inf", "eps")

# PGD's random start of (draw, norm, eps index) draws from Stream.PGD_START with keys
# (draw, _NORM_CODE[norm], eps index); the codes are part of the published numbers.
_NORM_CODE = {"inf": 0, "2": 1, "1": 2}
_GRAM_BUDGET_BYTES = 1 << 27
# The paper's PGD takes 7 steps and 30 converge on these nets (--help): beyond this a run
# costs hours per size and measures nothing new.
MAX_PGD_STEPS = 1000
_REMARK1 = ("q_term", "grad_l2_sq", "logit_grad_sq", "logit_grad_cos")
_H = ("H1", "H2", "H3", "H4", "H5")


def _norm_labels(norms: Sequence[float | str]) -> tuple[str, ...]:
    from verify.attacks import PGD_NORMS, norm_label, parse_norm

    out: list[str] = []
    for n in norms:
        try:
            p = parse_norm(n)
        except ValueError:
            p = None
        if p not in PGD_NORMS:
            raise InputError(f"--norms: unknown norm {str(n)!r}; choose from inf,2")
        if norm_label(p) in out:
            raise InputError(f"--norms: {n} given twice; give each norm once")
        out.append(norm_label(p))
    if not out:
        raise InputError("--norms: empty list; give e.g. --norms inf,2")
    return tuple(out)


@dataclass(frozen=True)
class FirstOrderConfig:
    """What to sample (``specs``: one family, one or more sizes) and how to attack it.

    ``eps_inf`` is sorted and deduplicated (two values at least, to fit an order in eps);
    ``margin`` is the half-width of the band around each predicted ratio (Lemma 2, Eq. 3,
    Remark 1); ``n_boot`` the bootstrap resamples of the fitted quantities.
    """

    specs: tuple[Spec, ...]
    eps_inf: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
    norms: tuple[str, ...] = ("inf", "2")
    draws: int = 16
    batch: int = 32
    seed: int = 0
    dtype: str = "float64"
    pgd_steps: int = 7
    pgd_step_size: float = 0.2
    margin: float = 0.1
    n_boot: int = DEFAULT_N_BOOT

    def __post_init__(self) -> None:

        specs = tuple(self.specs)
        object.__setattr__(self, "specs", specs)
        if not specs:
            raise InputError("give at least one size, e.g. --dims 256,1024")
        if len({s.family for s in specs}) != 1:
            raise InputError("every spec of a first-order check must come from one family")
        if len({s.d for s in specs}) != len(specs):
            raise InputError("two sizes give the same d; give distinct sizes")
        if any(layer.couples_samples for s in specs for layer in s.layers):
            raise InputError(
                "first-order: batch statistics couple the samples of a batch, and the attacks perturb every sample "
                "at once; use batch norm with running statistics (--bn-mode eval, or --mode eval for a --model)"
            )
        if specs[0].num_classes < 2:
            raise InputError(
                f"--classes: {specs[0].num_classes} class(es) make the cross-entropy identically 0; give --classes 2 or more"
            )
        eps = []
        for e in self.eps_inf:  # numbers, or their text from the command line
            try:
                v = float(e)
            except (TypeError, ValueError):
                raise InputError(f"--eps: {e!r} is not a number; give values like --eps 1e-4,1e-3,1e-2") from None
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"--eps: {e} is not a positive finite number; give values like --eps 1e-4,1e-3")
            eps.append(v)
        if len(set(eps)) < 2:
            raise InputError(
                "--eps: give at least two distinct values, to fit the order in eps; e.g. --eps 1e-4,1e-3,1e-2"
            )
        object.__setattr__(self, "eps_inf", tuple(sorted(set(eps))))
        object.__setattr__(self, "norms", _norm_labels(self.norms))
        check_sampling(self.draws, self.batch, self.seed)
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.pgd_steps < 1:
            raise InputError(f"--pgd-steps: {self.pgd_steps} is too small; give an integer >= 1")
        if self.pgd_steps > MAX_PGD_STEPS:
            raise InputError(
                f"--pgd-steps: {self.pgd_steps} steps would cost hours per size (30 already converge, see --help); "
                f"give at most --pgd-steps {MAX_PGD_STEPS}"
            )
        if not (math.isfinite(self.pgd_step_size) and self.pgd_step_size > 0):
            raise InputError(
                f"--pgd-step-size: {self.pgd_step_size} is not a positive number; e.g. --pgd-step-size 0.2"
            )
        check_fit(self.margin, self.n_boot, example=0.1)

    @property
    def family(self) -> str:
        return self.specs[0].family

    def settings(self) -> dict:
        """Every setting that changes the numbers (for the JSON ``run`` and the report)."""
        return {
            **spec_settings(self.specs),
            "eps_inf": list(self.eps_inf),
            "norms": list(self.norms),
            "draws": self.draws,
            "batch": self.batch,
            "seed": self.seed,
            "dtype": self.dtype,
            "pgd_steps": self.pgd_steps,
            "pgd_step_size": self.pgd_step_size,
            "margin": self.margin,
            "n_boot": self.n_boot,
        }


# ----------------------------------------------------------------------------- Monte Carlo


def logit_gram(spec: Spec, params, x):
    """Per-input Gram matrix ``<d_x f_k, d_x f_j>`` of the K logit gradients, shape (B, K, K).

    K backward passes; the batch is cut in chunks so that the K stored gradients stay under
    ~128 MB whatever the input size.
    """
    import torch

    from verify.model import forward

    k = spec.num_classes
    chunk = max(1, _GRAM_BUDGET_BYTES // (k * spec.d * x.element_size()))
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


class _Block:
    """Columns of one block of draws, in the record schema's order."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {c: [] for c in ("draw", "input", "quantity", *KEY_COLUMNS, "value")}

    def add(self, draw: int, quantity: str, values, norm=None, attack=None, eps_inf=math.nan, eps=math.nan) -> None:
        v = values.detach().cpu().double().numpy() if hasattr(values, "detach") else np.asarray(values, float)
        n = v.shape[0]
        for name, fill in (("draw", draw), ("quantity", quantity), ("norm", norm), ("attack", attack)):
            self.cols[name].append(np.full(n, fill, dtype=np.int64 if name == "draw" else object))
        self.cols["input"].append(np.arange(n, dtype=np.int64))
        self.cols["eps_inf"].append(np.full(n, eps_inf, dtype=np.float64))
        self.cols["eps"].append(np.full(n, eps, dtype=np.float64))
        self.cols["value"].append(v)

    def columns(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.cols.items()}


def _draw(spec: Spec, config: FirstOrderConfig, draw: int, device, out: _Block) -> None:
    """Every quantity of one weight draw (module docstring), in a fixed order."""
    import torch

    from graphs.rng import Stream, generator_for
    from verify.attacks import dual_norm, lp_norm, optimal_attack, parse_norm, pgd_attack
    from verify.losses import cross_entropy_loss, prop3_difference
    from verify.model import sample_params
    from verify.sampling import input_gradients, sample_inputs, sample_labels
    from verify.theory import eps_for_norm

    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    seed, d, k = config.seed, spec.d, spec.num_classes
    params = sample_params(spec, seed, draw, dtype=dtype, device=device)
    x = sample_inputs(spec, seed, draw, config.batch, dtype=dtype, device=device)
    labels = sample_labels(spec, seed, draw, config.batch, device=device)
    loss_fn = cross_entropy_loss(spec, params, labels)
    ig = input_gradients(spec, params, x, labels)
    g, loss0 = ig.loss_grad, ig.loss
    out.add(draw, "loss", loss0)
    out.add(draw, "x_l2", lp_norm(x, 2.0))
    for name, p in (("grad_l1", 1.0), ("grad_l2", 2.0), ("grad_linf", math.inf)):
        out.add(draw, name, lp_norm(g, p))

    q = torch.softmax(ig.logits, dim=1)
    err = q - torch.nn.functional.one_hot(labels, k).to(q.dtype)
    gram = logit_gram(spec, params, x)
    diag = torch.diagonal(gram, dim1=1, dim2=2)
    cos = gram / torch.sqrt(diag.unsqueeze(2) * diag.unsqueeze(1))
    off = (cos.sum(dim=(1, 2)) - torch.diagonal(cos, dim1=1, dim2=2).sum(dim=1)) / (k * (k - 1))
    out.add(draw, "q_term", (err**2).sum(dim=1))
    out.add(draw, "grad_l2_sq", lp_norm(g, 2.0) ** 2)
    out.add(draw, "logit_grad_sq", diag.mean(dim=1))
    out.add(draw, "logit_grad_cos", off)

    for j, e_inf in enumerate(config.eps_inf):
        e1 = eps_for_norm(e_inf, 1.0, d)
        out.add(draw, "delta_l2", lp_norm(optimal_attack(g, 1.0, e1), 2.0), "1", "one-step", e_inf, e1)
        for label in config.norms:
            p = parse_norm(label)
            e_p = eps_for_norm(e_inf, p, d)
            pred = e_p * dual_norm(g, p)
            with torch.no_grad():
                delta = optimal_attack(g, p, e_p)
                inc = loss_fn(x + delta) - loss0
            for quantity, values in (("prediction", pred), ("increase", inc), ("delta_l2", lp_norm(delta, 2.0))):
                out.add(draw, quantity, values, label, "one-step", e_inf, e_p)
            gen = generator_for(Stream.PGD_START, seed, draw, _NORM_CODE[label], j)
            delta = pgd_attack(
                loss_fn, x, p, e_p, steps=config.pgd_steps, step_size=config.pgd_step_size, generator=gen
            )
            with torch.no_grad():
                inc = loss_fn(x + delta) - loss0
            for quantity, values in (("prediction", pred), ("increase", inc), ("delta_l2", lp_norm(delta, 2.0))):
                out.add(draw, quantity, values, label, "pgd", e_inf, e_p)
            out.add(draw, "prop3_diff", prop3_difference(loss_fn, x, e_p, p, grad=g), label, None, e_inf, e_p)


def measure_first_order(config: FirstOrderConfig, *, rt=None, progress: bool = False) -> pd.DataFrame:
    """The Monte Carlo of the check: long-format records, columns
    ``arch, dim, d, draw, input, quantity, norm, attack, eps_inf, eps, value`` (``norm`` and
    ``attack`` None, eps NaN, for the quantities that have none)."""
    from verify.engine import forward_flops
    from verify.montecarlo import monte_carlo
    from verify.store import TaskKey

    device = rt.device if rt is not None else "cpu"

    # What the stored numbers depend on besides the spec and the draw id (verify.store); bump
    # "revision" whenever a change of this module changes them.
    key = TaskKey(
        "first-order",
        config.seed,
        {
            "revision": 1,
            "batch": config.batch,
            "eps_inf": list(config.eps_inf),
            "norms": list(config.norms),
            "pgd_steps": config.pgd_steps,
            "pgd_step_size": config.pgd_step_size,
            "dtype": config.dtype,
            "device": str(getattr(device, "type", device)),
        },
    )
    frames = []
    for spec in config.specs:

        def block(ids: Sequence[int], spec: Spec = spec) -> dict[str, np.ndarray]:
            out = _Block()
            for draw in ids:
                _draw(spec, config, int(draw), device, out)
            return out.columns()

        frames.append(
            monte_carlo(
                spec,
                range(config.draws),
                block,
                rt=rt,
                work_flops=forward_flops(spec) * config.batch,
                progress=progress,
                desc=f"first-order {spec.family} dim={spec.dim} (d={spec.d})",
                key=key,
            )
        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- summaries


def _key_dict(names: Sequence[str], key: Hashable) -> dict[str, Any]:
    """The values of a groupby key by column name (grouping by a list of columns gives tuple keys)."""
    return dict(zip(names, cast("tuple[Any, ...]", key)))


def _per_draw(records: pd.DataFrame, quantity: str, keys: list[str]) -> pd.DataFrame:
    """Mean over the inputs of each draw, one row per (keys, draw)."""
    sub = records[records["quantity"] == quantity]
    return sub.groupby([*keys, "draw"], as_index=False, sort=True)["value"].mean()


def lemma2_table(records: pd.DataFrame, *, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Lemma 2's ratio per (arch, d, norm, attack, eps): per draw, the mean over inputs of
    ``L(x + delta) - L(x)`` over the mean of ``eps_p ||d_x L||_q``; mean and t interval over draws."""
    keys = ["arch", "d", "norm", "attack", "eps_inf", "eps"]
    both = _per_draw(records, "increase", keys).merge(
        _per_draw(records, "prediction", keys), on=[*keys, "draw"], suffixes=("_inc", "_pred")
    )
    both["ratio"] = both["value_inc"] / both["value_pred"]
    rows = []
    for key, grp in both.groupby(keys, sort=True):
        m, iv = t_interval(grp["ratio"].to_numpy(), level)
        rows.append({**_key_dict(keys, key), "ratio": m, "ci_low": iv.low, "ci_high": iv.high, "draws": len(grp)})
    return pd.DataFrame(rows)


def largest_eps_within(table: pd.DataFrame, reference: dict[tuple[int, str, str], float], tol: float) -> pd.DataFrame:
    """Per (arch, d, norm, attack): the largest eps_inf such that at it and at every smaller eps
    the whole interval of the ratio lies within ``reference +- tol`` (NaN where none does).
    ``reference[(d, norm, attack)]``: 1 for the one-step attack, the linear-model limit for PGD."""
    rows = []
    for key, grp in table.sort_values("eps_inf").groupby(["arch", "d", "norm", "attack"], sort=True):
        arch, d, norm, attack = cast("tuple[Any, ...]", key)  # a list of keys groups by tuples
        ref = reference[(int(d), norm, attack)]
        best = math.nan
        for _, r in grp.iterrows():
            if r["ci_low"] >= ref - tol and r["ci_high"] <= ref + tol:
                best = r["eps_inf"]
            else:
                break
        rows.append({"arch": arch, "d": d, "norm": norm, "attack": attack, "reference": ref, "largest_eps_inf": best})
    return pd.DataFrame(rows)


def prop3_tables(
    records: pd.DataFrame, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, level: float = DEFAULT_LEVEL
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prop. 3: ``|L~ - L_eps| / eps`` per eps (mean and t interval over draws), and per
    (arch, d, norm) the order in eps: the slope of log E|L~ - L_eps| on log eps with its paired
    BCa bootstrap interval over draws (every eps uses the same draws) and the local slopes
    between consecutive eps."""
    sub = records[records["quantity"] == "prop3_diff"].copy()
    sub["value"] = sub["value"].abs()
    keys = ["arch", "d", "norm"]
    rows, fits = [], []
    for key, grp in sub.groupby(keys, sort=True):
        per_draw = grp.groupby(["eps_inf", "eps", "draw"], as_index=False, sort=True)["value"].mean()
        for (e_inf, eps), cell in per_draw.groupby(["eps_inf", "eps"], sort=True):
            m, iv = t_interval(cell["value"].to_numpy() / eps, level)
            rows.append(
                {
                    **_key_dict(keys, key),
                    "eps_inf": e_inf,
                    "eps": eps,
                    "diff_over_eps": m,
                    "ci_low": iv.low,
                    "ci_high": iv.high,
                }
            )
        fit = {
            **_key_dict(keys, key),
            "order": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "local_orders": [],
            "method": "BCa bootstrap",
        }
        try:
            sf = fit_power_law(grp, "prop3_diff", "eps", n_boot=n_boot, seed=seed, level=level)
        except ValueError:  # a zero mean difference (e.g. an exactly linear net) has no order
            pass
        else:
            fit.update(order=sf.slope, ci_low=sf.ci_low, ci_high=sf.ci_high, method=sf.interval.method)
            fit["local_orders"] = [float(v) for v in sf.local_slopes()]
        fits.append(fit)
    return pd.DataFrame(rows), pd.DataFrame(fits)


def snr_table(records: pd.DataFrame) -> pd.DataFrame:
    """Eq. 3 / Appendix C: mean ``||x||_2 / ||delta||_2`` per (arch, d, norm, attack, eps_inf) over
    every input, and the same times eps_inf (free of d and p if the rescaling preserves it)."""
    both = _snr_samples(records)
    out = both.groupby(["arch", "d", "norm", "attack", "eps_inf"], as_index=False, sort=True).agg(snr=("snr", "mean"))
    out["snr_times_eps_inf"] = out["snr"] * out["eps_inf"]
    return out


def _snr_samples(records: pd.DataFrame) -> pd.DataFrame:
    x = records[records["quantity"] == "x_l2"][["arch", "d", "draw", "input", "value"]]
    dl = records[records["quantity"] == "delta_l2"]
    both = dl.merge(x, on=["arch", "d", "draw", "input"], suffixes=("", "_x"))
    both["snr"] = both["value_x"] / both["value"]
    return both


def snr_spread(
    records: pd.DataFrame, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, level: float = DEFAULT_LEVEL
) -> tuple[float, Interval]:
    """Largest over smallest mean of ``eps_inf ||x||_2 / ||delta||_2`` over the one-step l_inf
    and l_2 attacks at every d and eps (1 when Eq. 3's rescaling keeps the SNR constant), with
    its BCa bootstrap interval over draws, paired when every cell holds the same draws."""
    both = _snr_samples(records)
    one = both[(both["attack"] == "one-step") & both["norm"].isin(["inf", "2"])].copy()
    one["scaled"] = one["snr"] * one["eps_inf"]
    per_draw = one.groupby(["d", "norm", "eps_inf", "draw"], as_index=False, sort=True)["scaled"].mean()
    cells = [g for _, g in per_draw.groupby(["d", "norm", "eps_inf"], sort=True)]
    if not cells:
        return math.nan, Interval.none()
    samples = [c["scaled"].to_numpy() for c in cells]
    means = np.array([s.mean() for s in samples])
    if not (np.isfinite(means).all() and means.min() > 0):
        # a dead net at tiny widths: zero gradients give zero perturbations (an infinite SNR)
        return math.nan, Interval.none("a cell's mean SNR is not a positive number: the net is dead there")

    def statistic(*resampled, axis=-1):
        m = np.stack([r.mean(axis=axis) for r in resampled], axis=-1)
        return m.max(axis=-1) / m.min(axis=-1)

    paired = same_draws([c["draw"].to_numpy() for c in cells])
    if not paired:  # unpaired resampling needs no equal sizes, but a ratio of maxima of unequal draws is meaningless
        return float(means.max() / means.min()), Interval.none("cells with different draws")
    return float(means.max() / means.min()), bootstrap_interval(
        samples, statistic, paired=True, n_boot=n_boot, seed=seed, level=level
    )


def _regression(tot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of y on x from the sums (n, sx, sy, sxx, sxy) along the last axis:
    slope, intercept and the slope through the origin."""
    n, sx, sy, sxx, sxy = (tot[..., i] for i in range(5))
    slope = (sxy - sx * sy / n) / (sxx - sx * sx / n)
    return slope, (sy - slope * sx) / n, sxy / sxx


def _sums_interval(sums, extra, fn, *, n_boot: int, seed: int, level: float) -> Interval:
    """BCa interval of ``fn(regression sums, *means of extra)``, resampling draws: a draw's
    sums and its ``extra`` values go together (paired)."""

    def statistic(*r, axis=-1):
        return fn(np.stack([a.sum(axis=axis) for a in r[:5]], axis=-1), *[a.mean(axis=axis) for a in r[5:]])

    return bootstrap_interval([*sums, *extra], statistic, paired=True, n_boot=n_boot, seed=seed, level=level)


def remark1_table(
    records: pd.DataFrame, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, level: float = DEFAULT_LEVEL
) -> pd.DataFrame:
    """Remark 1 / Eq. 9-10, per (arch, d): regress ``||d_x L||_2^2`` on the q-term over every
    input, with and without intercept, against the direct mean G of ``||d_x f_k||_2^2``.

    Uncorrelated logit gradients of equal mean square norm G give E[||d_x L||^2 | q] = G q-term,
    so the slope through the origin should equal G (``ratio`` = slope through 0 / G). Slopes
    and ratio: BCa bootstrap over draws (the sums of a draw resampled with its G); G and the
    mean cosine of distinct logit gradients: t intervals over draws.
    """
    piv = records[records["quantity"].isin(_REMARK1)].pivot_table(
        index=["arch", "d", "draw", "input"], columns="quantity", values="value"
    )
    rows = []
    for (arch, d), grp in piv.groupby(level=[0, 1], sort=True):
        grp = grp.reset_index()
        x, y = grp["q_term"], grp["grad_l2_sq"]
        grp = grp.assign(x2=x * x, xy=x * y, y2=y * y)
        per = grp.groupby("draw", sort=True).agg(
            n=("q_term", "size"),
            sx=("q_term", "sum"),
            sy=("grad_l2_sq", "sum"),
            sxx=("x2", "sum"),
            sxy=("xy", "sum"),
            syy=("y2", "sum"),
            g=("logit_grad_sq", "mean"),
            cos=("logit_grad_cos", "mean"),
        )
        sums = [per[c].to_numpy(dtype=np.float64) for c in ("n", "sx", "sy", "sxx", "sxy")]
        tot = np.array([s.sum() for s in sums])
        slope, intercept, origin = (float(v) for v in _regression(tot))
        n, sx, sy, sxx, sxy = tot
        syy = float(per["syy"].sum())
        r2 = (sxy - sx * sy / n) ** 2 / ((sxx - sx * sx / n) * (syy - sy * sy / n))
        g = per["g"].to_numpy(dtype=np.float64)

        boot = {"n_boot": n_boot, "seed": seed, "level": level}
        slope_iv = _sums_interval(sums, (), lambda t: _regression(t)[0], **boot)
        origin_iv = _sums_interval(sums, (), lambda t: _regression(t)[2], **boot)
        ratio_iv = _sums_interval(sums, (g,), lambda t, gm: _regression(t)[2] / gm, **boot)
        direct, direct_iv = t_interval(g, level)
        cos, cos_iv = t_interval(per["cos"].to_numpy(dtype=np.float64), level)
        rows.append(
            {
                "arch": arch,
                "d": int(d),
                "slope": slope,
                "slope_ci_low": slope_iv.low,
                "slope_ci_high": slope_iv.high,
                "intercept": intercept,
                "r2": float(r2),
                "slope_origin": origin,
                "origin_ci_low": origin_iv.low,
                "origin_ci_high": origin_iv.high,
                "logit_grad_sq": direct,
                "logit_grad_sq_ci_low": direct_iv.low,
                "logit_grad_sq_ci_high": direct_iv.high,
                "logit_grad_cos": cos,
                "cos_ci_low": cos_iv.low,
                "cos_ci_high": cos_iv.high,
                "ratio": origin / direct,
                "ratio_ci_low": ratio_iv.low,
                "ratio_ci_high": ratio_iv.high,
                "q_term_mean": float(x.mean()),
                "q_term_sd": float(x.std(ddof=1)),
                "samples": len(grp),
                "method": slope_iv.method,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- claims


def pgd_limits(config: FirstOrderConfig) -> dict[int, dict[str, float]]:
    """PGD's small-eps limit (``verify.attacks.pgd_linear_efficiency``) per d and norm: the
    reference of PGD's Lemma 2 ratio. Up to 256 gradients, fewer for large d (memory)."""
    from verify.attacks import pgd_linear_efficiency

    return {
        s.d: {
            n: pgd_linear_efficiency(
                n,
                s.d,
                steps=config.pgd_steps,
                step_size=config.pgd_step_size,
                batch=max(8, min(256, 2**22 // s.d)),
                seed=config.seed,
            )
            for n in config.norms
        }
        for s in config.specs
    }


def _broken(spec: Spec) -> tuple[str, ...]:
    """Hypotheses of (H) the sampled net breaks: by construction of a layer, or H3 at the border."""
    from graphs.hypotheses import h3_violation_fraction
    from graphs.spec import exact_view

    out = {h for layer in spec.layers for h in layer.hypotheses_broken()}
    view, _ = exact_view(spec)
    if view is not None and h3_violation_fraction(view) > 0:
        out.add("H3")
    return tuple(sorted(out))


def _iv(row, low: str = "ci_low", high: str = "ci_high", method: str = "t") -> Interval:
    return Interval(float(row[low]), float(row[high]), DEFAULT_LEVEL, method)


def claims_of(
    config: FirstOrderConfig,
    lemma2: pd.DataFrame,
    within: pd.DataFrame,
    prop3_order: pd.DataFrame,
    snr: tuple[float, Interval],
    remark1: pd.DataFrame,
    limits: dict[int, dict[str, float]],
    broken: dict[int, tuple[str, ...]],
) -> list[Claim]:
    """The claims, from the summaries: Lemma 2 per (d, norm, attack) at the smallest eps,
    Prop. 3 per (d, norm), Eq. 3's SNR once, Remark 1 per d."""
    claims = []
    m = config.margin
    smallest = lemma2[lemma2["eps_inf"] == min(config.eps_inf)]
    for _, r in smallest.iterrows():
        d, norm, attack = int(r["d"]), r["norm"], r["attack"]
        hit = within.loc[(within["d"] == d) & (within["norm"] == norm) & (within["attack"] == attack)]
        largest = float(hit["largest_eps_inf"].iloc[0]) if not hit.empty else math.nan
        reach = f"within +-{m:g} up to eps_inf = {largest:g}" if math.isfinite(largest) else f"outside +-{m:g} already"
        if attack == "pgd":
            predicted = limits[d][norm]
            statement = (
                f"Lemma 2, PGD, p = {norm}, d = {d}: E[L(x + delta) - L(x)] / E[eps_p ||d_x L||_q] tends, as eps -> 0, "
                f"to the fraction of the optimum this PGD schedule reaches on a linear loss ({predicted:.4f}), not to 1"
            )
            note = (
                f"{config.pgd_steps} steps of {config.pgd_step_size:g} eps from a random start; "
                f"at eps_inf = {r['eps_inf']:g}; {reach}"
            )
        else:
            predicted = LEMMA2_RATIO
            statement = (
                f"Lemma 2, optimal one-step attack, p = {norm}, d = {d}: "
                "E[L(x + delta) - L(x)] / E[eps_p ||d_x L||_q] -> 1 as eps -> 0"
            )
            note = f"at eps_inf = {r['eps_inf']:g}; {reach}"
        iv = _iv(r)
        claims.append(
            Claim(
                f"lemma2 {attack} p={norm} d={d}",
                statement,
                predicted,
                float(r["ratio"]),
                iv,
                band_verdict(iv, predicted, m),
                note=note,
            )
        )
    for _, r in prop3_order.iterrows():
        d, norm = int(r.loc["d"]), r.loc["norm"]
        iv = _iv(r, method=r.loc["method"])
        local = ", ".join(f"{v:.3g}" for v in r["local_orders"])
        claims.append(
            Claim(
                f"prop3 p={norm} d={d}",
                f"Prop. 3, p = {norm}, d = {d}: L~_eps - L_eps = o(eps), i.e. the order of E|L~_eps - L_eps| in eps "
                "is above 1 (2 for a loss twice differentiable along the attack)",
                PROP3_ORDER_BOUND,
                float(r.loc["order"]),
                iv,
                bound_verdict(iv, PROP3_ORDER_BOUND, above=True),
                note=f"consistent: the whole interval above 1; inconsistent: below 1; local orders {local or '-'}",
            )
        )
    spread, spread_iv = snr
    if math.isfinite(spread):
        claims.append(
            Claim(
                "eq3 snr",
                "Eq. 3 / Appendix C: with eps_p = eps_inf d^(1/p), the mean of ||x||_2 / ||delta||_2 of the one-step "
                "l_inf and l_2 attacks is the same for every p and d (largest over smallest mean = 1)",
                SNR_SPREAD,
                spread,
                spread_iv,
                band_verdict(spread_iv, SNR_SPREAD, m),
                note=f"over d = {', '.join(str(s.d) for s in config.specs)}, p = inf, 2 and every eps",
            )
        )
    for _, r in remark1.iterrows():
        d = int(r.loc["d"])
        iv = _iv(r, "ratio_ci_low", "ratio_ci_high", r.loc["method"])
        needed = _H
        claims.append(
            Claim(
                f"remark1 d={d}",
                f"Remark 1 / Eq. 9, d = {d}: uncorrelated logit gradients of equal mean square norm G give "
                "E[||d_x L||_2^2 | q] = G ((1-q_c)^2 + sum_{k!=c} q_k^2): slope through 0 / direct mean of "
                "||d_x f_k||_2^2 = 1",
                REMARK1_RATIO,
                float(r.loc["ratio"]),
                iv,
                band_verdict(iv, REMARK1_RATIO, m),
                hypotheses_needed=needed,
                hypotheses_broken=tuple(h for h in broken.get(d, ()) if h in needed),
                note=(
                    f"slope through 0 {r['slope_origin']:.4g}, G {r['logit_grad_sq']:.4g}; least squares with "
                    f"intercept: slope {r['slope']:.4g}, intercept {r['intercept']:+.3g}; mean cosine of distinct "
                    f"logit gradients {r['logit_grad_cos']:+.2g}"
                ),
            )
        )
    return claims


@dataclass(frozen=True)
class FirstOrderResult:
    """Everything ``check_first_order`` measured and concluded (tables as DataFrames)."""

    config: FirstOrderConfig
    lemma2: pd.DataFrame = field(repr=False)
    within: pd.DataFrame = field(repr=False)
    prop3: pd.DataFrame = field(repr=False)
    prop3_order: pd.DataFrame = field(repr=False)
    snr: pd.DataFrame = field(repr=False)
    snr_spread: tuple[float, Interval]
    remark1: pd.DataFrame = field(repr=False)
    limits: dict[int, dict[str, float]]
    broken: dict[int, tuple[str, ...]]
    claim_list: tuple[Claim, ...]
    records: pd.DataFrame = field(repr=False)

    @property
    def claims(self) -> list[Claim]:
        return list(self.claim_list)

    @property
    def largest_d_limits(self) -> dict[str, float]:
        """PGD's linear-model limits at the largest d (what the report quotes)."""
        return self.limits[max(self.limits)]

    def verdicts(self) -> dict[str, Verdict]:
        return {c.name: c.verdict for c in self.claim_list}


def check_first_order(
    config: FirstOrderConfig,
    *,
    rt=None,
    progress: bool | Progress = False,
    records: pd.DataFrame | None = None,
) -> FirstOrderResult:
    """Run the first-order checks. ``records`` (long format, e.g. from a store) skips the Monte
    Carlo; ``rt`` is a ``verify.runtime.Runtime`` (default: the CPU, torch's thread setting);
    ``progress``: one stderr line per phase (``verify.progress``)."""
    prog = as_progress(progress, "first-order")
    if records is None:
        what = f"attacks, {config.draws} draws x {config.batch} inputs at {len(config.specs)} size(s)"
        with prog.phase(what, bars=True):
            records = measure_first_order(config, rt=rt, progress=prog.enabled)
    with prog.phase("PGD's linear-model reference"):
        limits = pgd_limits(config)
    with prog.phase(f"tables and bootstrap fits ({config.n_boot} resamples)") as ph:
        ph.step("Lemma 2")
        lemma2 = lemma2_table(records)
        reference = {
            (d, n, a): (limits[d][n] if a == "pgd" else LEMMA2_RATIO)
            for d in limits
            for n in config.norms
            for a in ATTACKS
        }
        within = largest_eps_within(lemma2, reference, config.margin)
        ph.step("Prop. 3")
        prop3, prop3_order = prop3_tables(records, n_boot=config.n_boot, seed=config.seed)
        ph.step("Eq. 3 SNR")
        snr = snr_table(records)
        spread = snr_spread(records, n_boot=config.n_boot, seed=config.seed)
        ph.step("Remark 1")
        remark1 = remark1_table(records, n_boot=config.n_boot, seed=config.seed)
    broken = {s.d: _broken(s) for s in config.specs}
    claims = claims_of(config, lemma2, within, prop3_order, spread, remark1, limits, broken)
    return FirstOrderResult(
        config, lemma2, within, prop3, prop3_order, snr, spread, remark1, limits, broken, tuple(claims), records
    )
