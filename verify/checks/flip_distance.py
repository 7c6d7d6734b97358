"""Beyond the paper: how far is the nearest class change, against the input dimension?

Later work proves that for random ReLU networks a perturbation of l_2 size about
``||x|| / sqrt(d)``, in the gradient's direction, flips the output (Daniely and Schacham 2020;
Bubeck et al. 2021 for two layers; Bartlett, Bubeck and Cherapanamjeri 2021; Montanari and Wu
2023: ``verify.theory.FLIP_DISTANCE_PAPERS``), so ``||delta||_2 / ||x||_2 ~ d^(-1/2)``
(``verify.theory.FLIP_DISTANCE_SLOPE``). ``check_flip_distance(config)`` measures, for each
weight draw and standard normal input, in float64 (``verify.flips``):

- ``line``: the smallest step along the normalised loss gradient (l_2) or along its sign
  (l_inf) that changes the predicted class c = argmax f(x) (the loss is the cross-entropy at
  c, so the direction is the paper's g = d_x L);
- ``deepfool``: the DeepFool iterated minimum (l_2 and l_inf), close to the true distance to
  the nearest other class;
- ``first-order``: the linearised prediction ``min_k (f_c - f_k) / ||d_x (f_c - f_k)||_q``,
  which for these bias-free ReLU nets is ``min_k |cos(x, d_x(f_c - f_k))| ||x||_2`` in l_2 by
  Euler's identity ``f(x) = <d_x f(x), x>`` (positive homogeneity), measured as
  ``homogeneity`` (its relative residual, float64 rounding);

and records ``||delta||_2 / ||x||_2`` for each (for an l_inf step ``t sign(g)`` that is
``t sqrt(d) / ||x||_2 = ||delta||_inf / rms(x)``), plus the iterations DeepFool took and the
ratio of each measured distance to the first-order one. Each ratio's mean is fitted against
d (``verify.stats.fit_power_law``, paired bootstrap over draws; the finite-size fit too with
enough sizes) and compared with -1/2, and the constant ``C`` of ``C d^(-1/2)`` is reported
(``verify.stats.power_law_constant``). A draw's inputs that no step flips are recorded as
NaN and left out of the means (counted in the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.spec import Spec
from verify.checks.common import spec_settings
from verify.progress import Progress, as_progress
from verify.results import Claim, Interval, Verdict
from verify.stats import (
    ASYMPTOTIC_MIN_SIZES,
    DEFAULT_N_BOOT,
    AsymptoticFit,
    SlopeFit,
    band_verdict,
    draw_means,
    fit_asymptotic_power_law,
    fit_power_law,
    power_law_constant,
    samples_to_settle,
)
from verify.theory import FLIP_DISTANCE_SLOPE, finite_size_exponent

__all__ = [
    "HOMOGENEITY_RTOL",
    "METHODS",
    "FlipConfig",
    "FlipResult",
    "MethodResult",
    "check_flip_distance",
    "draw_flips",
    "measure_flip_distance",
]

# (quantity, attack norm, method): every ratio ||delta||_2 / ||x||_2 the check fits.
METHODS = (
    ("ratio_l2_line", "2", "line"),
    ("ratio_l2_deepfool", "2", "deepfool"),
    ("ratio_l2_first_order", "2", "first-order"),
    ("ratio_linf_line", "inf", "line"),
    ("ratio_linf_deepfool", "inf", "deepfool"),
    ("ratio_linf_first_order", "inf", "first-order"),
)
OTHER = ("homogeneity", "x_l2", "deepfool_l2_iterations", "deepfool_linf_iterations", "delta_linf_deepfool_linf")
# Euler's identity: a sum of d products rounds to at most ~d eps relative (float64: 1e-9 leaves
# room for d in the millions); a bias shows as a residual of order 1e-2 and more, so float32's
# bound 1e-4 still separates the two.
HOMOGENEITY_RTOL = {"float64": 1e-9, "float32": 1e-4}
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class FlipConfig:
    """What to sample: ``specs`` (one family, several sizes) and how to search."""

    specs: tuple[Spec, ...]
    draws: int = 64
    batch: int = 2
    seed: int = 0
    overshoot: float = 0.02
    max_iter: int = 50
    t_max: float = 10.0  # the line search gives up beyond t_max * ||x||_2 (l_2) or t_max * rms(x) (l_inf)
    margin: float = 0.05
    n_boot: int = DEFAULT_N_BOOT
    dtype: str = "float64"

    def __post_init__(self) -> None:
        from graphs.rng import check_seed

        specs = tuple(sorted(self.specs, key=lambda s: s.d))
        object.__setattr__(self, "specs", specs)
        if len(specs) < 2:
            raise InputError("a slope needs at least two sizes; give e.g. --dims 64,256,1024")
        if len({s.family for s in specs}) != 1:
            raise InputError("every spec of a flip-distance check must come from one family")
        if len({s.d for s in specs}) != len(specs):
            raise InputError("two sizes give the same d; give distinct sizes")
        if any(layer.couples_samples for s in specs for layer in s.layers):
            raise InputError(
                "flip-distance: batch statistics couple the samples of a batch, and the searches move every sample "
                "at once; use batch norm with running statistics (--bn-mode eval, or --mode eval for a --model)"
            )
        if specs[0].num_classes < 2:
            raise InputError(f"--classes: {specs[0].num_classes} class(es) have nothing to flip to; give 2 or more")
        if self.draws < 2:
            raise InputError(f"--draws: {self.draws} is too small (an interval needs two draws); give e.g. 64")
        if self.batch < 1:
            raise InputError(f"--batch: {self.batch} is too small; give an integer >= 1")
        check_seed(self.seed)
        if not (math.isfinite(self.overshoot) and self.overshoot > 0):
            raise InputError(f"--overshoot: {self.overshoot} is not positive; give e.g. 0.02")
        if self.max_iter < 1:
            raise InputError(f"--max-iter: {self.max_iter} is too small; give e.g. 50")
        if not (math.isfinite(self.t_max) and self.t_max > 0):
            raise InputError(f"--t-max: {self.t_max} is not positive; give e.g. 10")
        if not (math.isfinite(self.margin) and self.margin > 0):
            raise InputError(f"--margin: {self.margin} is not positive; give e.g. --margin 0.05")
        if self.n_boot < 100:
            raise InputError(f"--n-boot: {self.n_boot} is too small for a 95% interval; give an integer >= 100")
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")

    def settings(self) -> dict:
        """Every setting that changes the numbers (for the JSON ``run`` and the report): the
        family's options include ``num_classes`` (``--classes``: it lives in the last layer)."""
        return {
            **spec_settings(self.specs),
            "draws": self.draws,
            "batch": self.batch,
            "seed": self.seed,
            "overshoot": self.overshoot,
            "max_iter": self.max_iter,
            "t_max": self.t_max,
            "margin": self.margin,
            "n_boot": self.n_boot,
            "dtype": self.dtype,
        }


# ----------------------------------------------------------------------------- Monte Carlo


def draw_flips(spec: Spec, config: FlipConfig, draw: int, device="cpu") -> dict[str, np.ndarray]:
    """Every quantity of one weight draw, per input: ``{quantity: (batch,) array}``."""
    import torch

    from verify.flips import deepfool, first_order_distance, homogeneity_residual, line_search_flip, logit_jacobian
    from verify.model import forward, sample_params
    from verify.sampling import input_gradients, sample_inputs

    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    params = sample_params(spec, config.seed, draw, dtype=dtype, device=device)
    x = sample_inputs(spec, config.seed, draw, config.batch, dtype=dtype, device=device)

    def logits_fn(inp: torch.Tensor) -> torch.Tensor:
        return forward(spec, params, inp)

    logits, jac = logit_jacobian(logits_fn, x)
    c = logits.argmax(dim=1)
    # the cross-entropy at the predicted class c: its gradient is the paper's g = d_x L
    loss_grad = input_gradients(spec, params, x, c).loss_grad
    flat = x.reshape(x.shape[0], -1)
    x_l2 = torch.linalg.vector_norm(flat, dim=1)
    rms = x_l2 / math.sqrt(spec.d)
    out: dict[str, np.ndarray] = {}
    out["homogeneity"] = homogeneity_residual(logits, jac, x).cpu().numpy()
    out["x_l2"] = x_l2.cpu().numpy()
    fo2, _ = first_order_distance(logits, jac, 2.0)
    foi, _ = first_order_distance(logits, jac, math.inf)
    g = loss_grad.reshape(loss_grad.shape[0], -1)
    u2 = (g / torch.linalg.vector_norm(g, dim=1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)).reshape(x.shape)
    ui = torch.sign(g).reshape(x.shape)
    finite = torch.isfinite(fo2)
    t0_2 = torch.where(finite, fo2, x_l2 / math.sqrt(spec.d))
    t0_i = torch.where(torch.isfinite(foi), foi, rms / math.sqrt(spec.d))
    line2 = line_search_flip(logits_fn, x, u2, t0=t0_2, t_max=config.t_max * x_l2)
    linei = line_search_flip(logits_fn, x, ui, t0=t0_i, t_max=config.t_max * rms)
    df2 = deepfool(logits_fn, x, 2.0, overshoot=config.overshoot, max_iter=config.max_iter)
    dfi = deepfool(logits_fn, x, math.inf, overshoot=config.overshoot, max_iter=config.max_iter)
    df2_l2 = torch.linalg.vector_norm(df2.perturbation.reshape(x.shape[0], -1), dim=1)
    dfi_flat = dfi.perturbation.reshape(x.shape[0], -1)
    dfi_l2 = torch.linalg.vector_norm(dfi_flat, dim=1)
    nonzero = torch.count_nonzero(ui.reshape(x.shape[0], -1), dim=1).to(dtype)
    ratios = {
        "ratio_l2_line": line2 / x_l2,
        "ratio_l2_deepfool": df2_l2 / x_l2,
        "ratio_l2_first_order": fo2 / x_l2,
        # an l_inf step t sign(g) has l_2 norm t sqrt(#nonzero coordinates)
        "ratio_linf_line": linei * torch.sqrt(nonzero) / x_l2,
        "ratio_linf_deepfool": dfi_l2 / x_l2,
        "ratio_linf_first_order": foi * math.sqrt(spec.d) / x_l2,
    }
    for name, v in ratios.items():
        out[name] = v.cpu().numpy()
    out["deepfool_l2_iterations"] = df2.iterations.to(torch.float64).cpu().numpy()
    out["deepfool_linf_iterations"] = dfi.iterations.to(torch.float64).cpu().numpy()
    out["delta_linf_deepfool_linf"] = dfi_flat.abs().amax(dim=1).cpu().numpy()
    return out


def measure_flip_distance(config: FlipConfig, *, rt=None, progress: bool | Progress = False) -> pd.DataFrame:
    """Long-format records of every size (``verify.montecarlo``): arch, dim, d, draw, input, quantity, value."""
    from verify.engine import forward_flops
    from verify.montecarlo import monte_carlo

    device = rt.device if rt is not None else "cpu"
    names = [m[0] for m in METHODS] + list(OTHER)
    frames = []
    for spec in config.specs:

        def block(ids: Sequence[int], spec: Spec = spec) -> dict[str, np.ndarray]:
            draws, inputs, quantities, values = [], [], [], []
            for draw in ids:
                out = draw_flips(spec, config, int(draw), device)
                for name in names:
                    v = out[name]
                    draws.append(np.full(v.size, int(draw)))
                    inputs.append(np.arange(v.size))
                    quantities.append(np.full(v.size, name, dtype=object))
                    values.append(np.asarray(v, dtype=np.float64))
            return {
                "draw": np.concatenate(draws),
                "input": np.concatenate(inputs),
                "quantity": np.concatenate(quantities),
                "value": np.concatenate(values),
            }

        frames.append(
            monte_carlo(
                spec,
                range(config.draws),
                block,
                rt=rt,
                # a draw costs about 100 forward or backward passes (line searches, DeepFool's K gradients)
                work_flops=forward_flops(spec) * config.batch * 100,
                progress=progress.enabled if isinstance(progress, Progress) else progress,
                desc=f"flip-distance {spec.family} dim={spec.dim} (d={spec.d})",
            )
        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class MethodResult:
    """One ratio ``||delta||_2 / ||x||_2``: its fit against d, its constant at slope -1/2, claims."""

    quantity: str
    norm: str
    method: str
    fit: SlopeFit
    claim: Claim
    constant: float
    constant_interval: Interval
    per_size_constant: np.ndarray = field(repr=False)  # sqrt(d) * mean ratio per size
    failures: np.ndarray = field(repr=False)  # inputs without a flip, per size
    asymptotic: AsymptoticFit | None = None
    asymptotic_claim: Claim | None = None
    to_first_order: np.ndarray | None = field(default=None, repr=False)  # mean ratio / first-order ratio per size


@dataclass(frozen=True)
class FlipResult:
    config: FlipConfig
    methods: tuple[MethodResult, ...]
    homogeneity: float  # largest relative residual of Euler's identity over every input
    homogeneity_claim: Claim
    iterations: dict[str, tuple[float, float]]  # DeepFool l2/linf: mean and largest iteration count
    records: pd.DataFrame = field(repr=False)

    @property
    def claims(self) -> list[Claim]:
        out = [m.claim for m in self.methods]
        out += [m.asymptotic_claim for m in self.methods if m.asymptotic_claim is not None]
        return [*out, self.homogeneity_claim]

    def method(self, quantity: str) -> MethodResult:
        for m in self.methods:
            if m.quantity == quantity:
                return m
        raise KeyError(quantity)


def _finite(records: pd.DataFrame, quantity: str) -> tuple[pd.DataFrame, np.ndarray]:
    sub = records.loc[records["quantity"] == quantity]
    bad = ~np.isfinite(sub["value"].to_numpy(dtype=np.float64))
    fails = np.asarray(sub.assign(bad=bad).groupby("d")["bad"].sum(), dtype=np.int64)
    return sub.loc[~bad], fails


def _note_dense(spec: Spec) -> str:
    if spec.family == "dense":
        return "proved for random dense ReLU nets (the papers' widths conditions aside)"
    return f"{spec.family}: beyond the nets the papers prove it for (dense random ReLU nets)"


def _method_result(config: FlipConfig, records: pd.DataFrame, quantity: str, norm: str, method: str) -> MethodResult:
    sub, fails = _finite(records, quantity)
    if sub.empty or sub.groupby("d").size().size < len(config.specs):
        raise InputError(
            f"{quantity}: no input flipped at some size (t_max or max_iter too small?); raise --t-max or --max-iter"
        )
    kw: dict = {"n_boot": config.n_boot, "seed": config.seed}
    fit = fit_power_law(sub, quantity, "d", **kw)
    verdict = band_verdict(fit.interval, FLIP_DISTANCE_SLOPE, config.margin)
    const, const_iv = power_law_constant(sub, quantity, "d", slope=FLIP_DISTANCE_SLOPE, **kw)
    notes = [_note_dense(config.specs[0])]
    if fails.sum():
        notes.append(f"{int(fails.sum())} input(s) without a flip left out")
    if verdict is Verdict.INCONCLUSIVE:
        settle = samples_to_settle(fit.interval, fit.slope, int(fit.draws.min()), FLIP_DISTANCE_SLOPE, config.margin)
        notes.append(f"~{settle} draws per size would likely settle it" if settle else "on the band's edge")
    what = {"line": "line search along the gradient", "deepfool": "DeepFool", "first-order": "first-order prediction"}
    claim = Claim(
        name=quantity,
        statement=(
            f"l_{norm} flip distance ({what[method]}): ||delta||_2 / ||x||_2 ~ d^(-1/2) "
            f"(slope {FLIP_DISTANCE_SLOPE:+g} against log d)"
        ),
        predicted=FLIP_DISTANCE_SLOPE,
        estimate=fit.slope,
        interval=fit.interval,
        verdict=verdict,
        note="; ".join(notes),
    )
    asym = asym_claim = None
    if len(config.specs) >= ASYMPTOTIC_MIN_SIZES:
        exponent = finite_size_exponent(config.specs[0])[0]
        asym = fit_asymptotic_power_law(sub, quantity, "d", exponent=exponent, **kw)
        asym_claim = Claim(
            name=f"{quantity}_asymptotic",
            statement=f"{claim.statement}, finite-size fit with c d^({exponent:g})",
            predicted=FLIP_DISTANCE_SLOPE,
            estimate=asym.slope,
            interval=asym.interval,
            verdict=band_verdict(asym.interval, FLIP_DISTANCE_SLOPE, config.margin),
            note=_note_dense(config.specs[0]),
        )
    per_size = fit.means * np.sqrt(fit.xs)
    to_fo = None
    if method != "first-order":
        reference = f"ratio_{'l2' if norm == '2' else 'linf'}_first_order"
        ref, _ = _finite(records, reference)
        ref_means = draw_means(ref, reference, "d").groupby("d")["value"].mean()
        to_fo = fit.means / np.asarray(ref_means, dtype=np.float64)
    return MethodResult(quantity, norm, method, fit, claim, const, const_iv, per_size, fails, asym, asym_claim, to_fo)


def check_flip_distance(
    config: FlipConfig, *, rt=None, progress: bool | Progress = False, records: pd.DataFrame | None = None
) -> FlipResult:
    """Run the flip-distance check (``records`` from ``measure_flip_distance`` skip the Monte
    Carlo); ``progress``: one stderr line per phase (``verify.progress``)."""
    prog = as_progress(progress, "flip-distance")
    if records is None:
        what = f"line searches and DeepFool, {config.draws} draws x {config.batch} inputs at {len(config.specs)} sizes"
        with prog.phase(what, bars=True):
            records = measure_flip_distance(config, rt=rt, progress=prog)
    with prog.phase(f"bootstrap fits of {len(METHODS)} distances ({config.n_boot} resamples)"):
        methods = tuple(_method_result(config, records, q, n, m) for q, n, m in METHODS)
    hom = records.loc[records["quantity"] == "homogeneity", "value"].to_numpy(dtype=np.float64)
    worst = float(np.nanmax(hom)) if hom.size else math.nan
    tol = HOMOGENEITY_RTOL[config.dtype]
    ok = math.isfinite(worst) and worst <= tol
    homogeneity_claim = Claim(
        name="homogeneity",
        statement=(
            "bias-free ReLU nets are positively homogeneous: f(x) = <d_x f(x), x> exactly (Euler's identity), "
            f"to {config.dtype} rounding (largest relative residual <= {tol:g})"
        ),
        predicted=0.0,
        estimate=worst,
        interval=Interval.none("exact identity"),
        verdict=Verdict.CONSISTENT if ok else Verdict.INCONSISTENT,
        note=f"over {hom.size} inputs in {config.dtype}",
    )
    iterations = {}
    for norm in ("l2", "linf"):
        it = records.loc[records["quantity"] == f"deepfool_{norm}_iterations", "value"].to_numpy(dtype=np.float64)
        iterations[norm] = (float(it.mean()), float(it.max()))
    return FlipResult(config, methods, worst, homogeneity_claim, iterations, records)
