"""``verify pooling``: Theorems 10 and 11, average pooling dampens input gradients.

Theorem 10: if every path crosses average-pooling nodes of degrees a_1..a_n, then
``||d_x f_k||_2 ~ 1 / prod sqrt(a_i)``. The command varies the window k of the *first*
pooling layer of ``avgpool-cnn`` (a = k^2, the other layers unchanged) at one input size,
fits the slope of ``E||d_x f_k||_2`` against ``prod a_i`` (predicted -1/2) and puts the
exact (H) values of Eq. 13 (``graphs.moments``) beside the Monte Carlo ones.

Theorem 11 (our reading of Appendix B): the strided net against the same net with every
stride s replaced by ``conv(stride 1) -> ReLU -> avgpool(s)``; the ratio pooled/strided of
``E||d_x f_k||_2`` is predicted to be ``1 / prod sqrt(a_i) = 1 / prod s_i``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from graphs.errors import InputError
from graphs.hypotheses import h3_violation_fraction
from graphs.moments import predicted_logit_grad_sq
from graphs.spec import AvgPool2d, Spec, build_spec
from verify.engine import measure
from verify.fit import SlopeFit, fit_power_law, interval_verdict, samples_to_settle, verdict
from verify.options import (
    add_arch_arguments,
    add_fit_arguments,
    add_output_arguments,
    add_sampling_arguments,
    check_fit_arguments,
    check_sampling_arguments,
    int_tuple,
    spec_options,
)
from verify.reporting import (
    atomic_save_figure,
    atomic_write_text,
    ensure_writable_dir,
    format_number,
    json_text,
    library_versions,
    markdown_table,
    resolve_device,
)
from verify.second_moments import SecondMomentCheck, combined_z, per_draw_norms, second_moment_check

__all__ = [
    "add_parser",
    "run",
    "DEFAULT_CHANNELS",
    "DEFAULT_SAMPLES",
    "DEFAULT_BATCH",
    "PoolingSetup",
    "pooling_setup",
    "ratio_interval",
]

# Measured on 2 CPU cores (see the epilog): the 64-channel net at 128 px costs ~1 s per draw
# and the CI needs tens of draws per window, so the default is 16 channels (~0.1-0.3 s per draw).
# Theorem 10 does not depend on the width, and the exact (H) value does not either.
DEFAULT_CHANNELS = 16
DEFAULT_SAMPLES = 64
DEFAULT_BATCH = 4

EPILOG = f"""\
examples:
  verify pooling --arch avgpool-cnn --pools 1,2,4,8 --dim 128         # about a minute on 2 cores
  verify pooling --arch avgpool-cnn --pools 1,2,4,8 --dim 128 --padding circular --samples 64
  verify pooling --arch avgpool-cnn --pools 1,2,4 --dim 64 --channels 64 --json
  verify pooling --arch avgpool-cnn --pools 1,3,9 --dim 144 --strides 1,2,2,2

The swept variable is x = prod a_i (a_i = window_i^2 over the pooling layers); the first
window takes the values of --pools, the others stay as --pool-windows (default: the
strides). A window that does not tile the activation it pools is an error, before any work.

Per window: SAMPLES He weight draws (default {DEFAULT_SAMPLES}) x BATCH normal inputs (default
{DEFAULT_BATCH}), label uniform; ||d_x f_c||_2 per sample. The slope of log E||d_x f_c||_2
against log prod a_i is fitted by least squares with a 95% bootstrap CI over draws and
compared with -1/2 (consistent: CI inside -1/2 +- MARGIN). The squared norm is fitted too
(predicted -1): its mean is what Eq. 13 computes exactly under (H), printed beside it, both
with E[w^2] = 2/in-degree (ideal H3) and with the init's 2/nominal fan-in.

Theorem 11 compares the strided net with the pooled one (pools = strides) at the same size
and channels: the ratio of E||d_x f_c||_2 with a bootstrap CI, next to 1/prod sqrt(a_i)
and to the exact (H) ratio sqrt(E_pooled / E_strided).

Default {DEFAULT_CHANNELS} channels (--channels): at 64 channels and 128 px one draw costs about
1 s on 2 CPU cores, 16 channels about 0.3 s; neither prediction depends on the width.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pooling",
        help="Theorems 10/11: E||d_x f_k||_2 against the product of pooling degrees, strided vs pooled",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arch_arguments(parser, default_arch="avgpool-cnn")
    parser.add_argument("--pools", default="1,2,4,8", help="windows k of the first pooling layer, a = k^2 (default 1,2,4,8)")
    parser.add_argument("--dim", type=int, default=128, help="input side n (default 128)")
    add_sampling_arguments(parser, samples=DEFAULT_SAMPLES, batch=DEFAULT_BATCH)
    add_fit_arguments(parser, what="-1/2")
    add_output_arguments(parser)
    parser.set_defaults(func=run)
    return parser


@dataclass
class PoolingSetup:
    """Every net of one run, built and validated before any Monte Carlo."""

    windows: list[tuple[int, ...]]  # pooling windows of each swept net
    sweep: list[Spec]
    prod_a: list[int]
    strided: Spec
    pooled: Spec  # pools = strides (Theorem 11)
    pooled_index: int | None  # position of ``pooled`` in ``sweep`` when it is one of them


def _pool_windows(spec: Spec) -> tuple[int, ...]:
    return tuple(l.window for l in spec.layers if isinstance(l, AvgPool2d))


def pooling_setup(args: argparse.Namespace) -> PoolingSetup:
    """Parse and build every spec (a window that does not fit raises a one-line SpecError)."""
    if args.arch != "avgpool-cnn":
        raise InputError(f"verify pooling sweeps the first pooling window of avgpool-cnn; got --arch {args.arch}, use --arch avgpool-cnn")
    firsts = int_tuple(args.pools, "--pools")
    if len(set(firsts)) != len(firsts):
        raise InputError(f"--pools: windows must be distinct, got {args.pools}")
    if len(firsts) < 2:
        raise InputError(f"--pools: give at least two windows to fit a slope, e.g. --pools 1,2,4,8; got {args.pools}")
    if args.dim < 1:
        raise InputError(f"--dim: {args.dim} is not a positive image side")
    if args.channels is None:
        args.channels = DEFAULT_CHANNELS
    opts = spec_options(args)
    base = build_spec("avgpool-cnn", args.dim, **{k: v for k, v in opts.items() if k != "pools"})
    default_windows = _pool_windows(base)
    others = tuple(opts.get("pools") or default_windows)
    if not default_windows:
        raise InputError("the net has no pooling layer (every stride is 1); give --strides with a stride > 1")
    if len(others) != len(default_windows):
        # Named here: the spec builder's message would blame --pools for a --pool-windows mistake.
        raise InputError(
            f"--pool-windows gives {len(others)} window(s) for {len(default_windows)} strided layer(s); "
            "give one window per stride > 1"
        )
    sweep, windows = [], []
    for k in firsts:
        w = (k, *others[1:])
        try:
            sweep.append(build_spec("avgpool-cnn", args.dim, **{**opts, "pools": w}))
        except InputError as exc:
            raise type(exc)(f"--pools {k} at --dim {args.dim}: {exc}") from None
        windows.append(w)
    strided = build_spec("strided-cnn", args.dim, **{k: v for k, v in opts.items() if k != "pools"})
    pooled_index = next((i for i, w in enumerate(windows) if w == default_windows), None)
    pooled = sweep[pooled_index] if pooled_index is not None else base
    prod_a = [math.prod(k * k for k in w) for w in windows]
    return PoolingSetup(windows, sweep, prod_a, strided, pooled, pooled_index)


def _validate(args: argparse.Namespace):
    setup = pooling_setup(args)
    check_sampling_arguments(args)
    check_fit_arguments(args)
    device = resolve_device(args.device)
    out_dir = ensure_writable_dir(args.out_dir)
    return setup, device, out_dir


def ratio_interval(
    num: np.ndarray, den: np.ndarray, *, n_boot: int, seed: int, level: float = 0.95, paired: bool = False
) -> tuple[float, float, float]:
    """``mean(num) / mean(den)`` and its percentile bootstrap CI.

    ``paired``: ``num[i]`` and ``den[i]`` come from the same draw i and are resampled together;
    otherwise each sample's draws are resampled on their own (valid only if they are independent).
    """
    ratio = float(num.mean() / den.mean())

    def statistic(a, b, axis=-1):
        return a.mean(axis=axis) / b.mean(axis=axis)

    res = stats.bootstrap(
        (num, den), statistic, n_resamples=n_boot, confidence_level=level, method="percentile",
        vectorized=True, paired=paired, rng=np.random.default_rng(seed),
    )
    return ratio, float(res.confidence_interval.low), float(res.confidence_interval.high)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    setup, device, out_dir = _validate(args)
    progress = not args.json and sys.stderr.isatty()
    frames = []
    for spec, w, pa in zip(setup.sweep, setup.windows, setup.prod_a):
        rec = measure([spec], samples=args.samples, batch=args.batch, seed=args.seed, device=device, progress=progress)
        rec = rec[rec["quantity"] == "logit_grad_l2"].copy()
        rec["prod_a"] = pa
        rec["window"] = w[0]
        frames.append(rec)
    strided_rec = measure([setup.strided], samples=args.samples, batch=args.batch, seed=args.seed, device=device, progress=progress)
    strided_rec = strided_rec[strided_rec["quantity"] == "logit_grad_l2"]
    if setup.pooled_index is not None:
        pooled_rec = frames[setup.pooled_index]
    else:
        pooled_rec = measure([setup.pooled], samples=args.samples, batch=args.batch, seed=args.seed, device=device, progress=progress)
        pooled_rec = pooled_rec[pooled_rec["quantity"] == "logit_grad_l2"]
    records = pd.concat(frames, ignore_index=True)
    squared = records.assign(quantity="logit_grad_l2_sq", value=records["value"] ** 2)
    records = pd.concat([records, squared], ignore_index=True)

    if (records.groupby(["prod_a", "draw"])["value"].max() <= 0).any():
        # verify.fit takes logs per draw; a draw whose every ReLU path is dead has a zero gradient.
        raise InputError(
            "some weight draws have a zero input gradient (every ReLU path dead), which the log-log fit cannot take; "
            "use more --channels"
        )
    fit = fit_power_law(records, "logit_grad_l2", "prod_a", n_boot=args.n_boot, seed=args.seed)
    fit_sq = fit_power_law(records, "logit_grad_l2_sq", "prod_a", n_boot=args.n_boot, seed=args.seed)
    v = verdict(fit, -0.5, args.margin)
    v_sq = verdict(fit_sq, -1.0, 2 * args.margin)
    checks = [second_moment_check(spec, f) for spec, f in zip(setup.sweep, frames)]
    he = np.array([c.he for c in checks])
    init = np.array([c.init for c in checks])
    logx = np.log(np.array(setup.prod_a, dtype=np.float64))
    h_slope_he = float(np.polyfit(logx, 0.5 * np.log(he), 1)[0])
    h_slope_init = float(np.polyfit(logx, 0.5 * np.log(init), 1)[0])

    thm11 = _theorem11(args, setup, strided_rec, pooled_rec)
    png = out_dir / f"pooling-{args.arch}.png"
    _plot(args, setup, fit, fit_sq, v, v_sq, records, he, init, png)
    wall = time.perf_counter() - start
    payload = _json(args, setup, fit, fit_sq, v, v_sq, he, init, h_slope_he, h_slope_init, checks, thm11)
    md = out_dir / f"pooling-{args.arch}.md"
    payload["report"] = str(md)
    text = _markdown(args, setup, fit, fit_sq, v, v_sq, checks, h_slope_he, h_slope_init, thm11, device, wall, png.name)
    atomic_write_text(md, text)
    if args.json:
        print(json_text(payload))
    else:
        print(
            f"slope of E||d_x f_k||_2 against prod a_i: {fit.slope:+.3f} [{fit.ci_low:+.3f}, {fit.ci_high:+.3f}] "
            f"(predicted -0.5; exact (H): {h_slope_he:+.3f}, with the init's variances {h_slope_init:+.3f}): {v}"
        )
        rows = [[pa, c.mc_sq, c.mc_sq_se, c.he, c.init, c.rel_init] for pa, c in zip(setup.prod_a, checks)]
        print(markdown_table(["prod a", "MC E||.||^2", "s.e.", "(H) he", "(H) init", "MC/init - 1"], rows), end="")
        print(
            f"Theorem 11: pooled/strided = {thm11['ratio']:.4g} [{thm11['ci_low']:.4g}, {thm11['ci_high']:.4g}] "
            f"(contains the prediction: {'yes' if thm11['contains_predicted'] else 'no'}); "
            f"1/prod sqrt(a_i) = {thm11['predicted']:.4g}; (H) {thm11['h_ratio_he']:.4g}, with the init's variances "
            f"{thm11['h_ratio_init']:.4g}"
        )
        print(f"report: {md}  plot: {png}")
    print(f"wall time: {time.perf_counter() - start:.1f} s", file=sys.stderr if args.json else sys.stdout)
    return 0


def _theorem11(args, setup: PoolingSetup, strided_rec: pd.DataFrame, pooled_rec: pd.DataFrame) -> dict:
    num, den = per_draw_norms(pooled_rec), per_draw_norms(strided_rec)
    # Draw i of both nets uses generator_for(seed, i): the same inputs and, the conv kernels
    # having the same shapes, the same weights, so the two norms of one draw are strongly
    # correlated (about 0.9) and must be resampled together; independent resampling would
    # widen the interval about threefold.
    paired = num.index.equals(den.index)
    ratio, lo, hi = ratio_interval(num.to_numpy(), den.to_numpy(), n_boot=args.n_boot, seed=args.seed, paired=paired)
    prod_a = math.prod(k * k for k in _pool_windows(setup.pooled))
    predicted = 1 / math.sqrt(prod_a)
    h_he = math.sqrt(predicted_logit_grad_sq(setup.pooled, variance="he") / predicted_logit_grad_sq(setup.strided, variance="he"))
    h_init = math.sqrt(
        predicted_logit_grad_sq(setup.pooled, variance="init") / predicted_logit_grad_sq(setup.strided, variance="init")
    )
    strided_check = second_moment_check(setup.strided, strided_rec)
    pooled_check = second_moment_check(setup.pooled, pooled_rec)
    # The ratio as an exponent of prod a_i: the same band rule as the slopes (predicted -1/2).
    exponent = [math.log(r) / math.log(prod_a) if r > 0 and prod_a > 1 else math.nan for r in (ratio, lo, hi)]
    return {
        "strided": setup.strided.describe(),
        "pooled": setup.pooled.describe(),
        "prod_a": prod_a,
        "ratio": ratio,
        "ci_low": lo,
        "ci_high": hi,
        "predicted": predicted,
        "h_ratio_he": h_he,
        "h_ratio_init": h_init,
        "exponent": exponent[0],
        "exponent_ci": [exponent[1], exponent[2]],
        "verdict": interval_verdict(exponent[1], exponent[2], -0.5, args.margin),
        "contains_predicted": bool(lo <= predicted <= hi),
        "paired": paired,
        "strided_mc_norm": strided_check.mc_norm,
        "pooled_mc_norm": pooled_check.mc_norm,
        "second_moments": [strided_check.as_dict(), pooled_check.as_dict()],
    }


def _json(args, setup, fit, fit_sq, v, v_sq, he, init, h_slope_he, h_slope_init, checks, thm11) -> dict:
    spec0 = setup.sweep[0]
    return {
        "arch": args.arch,
        "padding": spec0.padding,
        "x": "prod_a",
        "xs": list(setup.prod_a),
        "windows": [list(w) for w in setup.windows],
        "dims": [spec0.dim],
        "d": [spec0.d],
        "channels": args.channels,
        "seed": args.seed,
        "samples": args.samples,
        "batch": args.batch,
        "h3_violation_fraction": max(h3_violation_fraction(s) for s in setup.sweep),
        "quantities": [
            {
                "name": "logit_grad_l2",
                "predicted_slope": -0.5,
                "slope": fit.slope,
                "ci_low": fit.ci_low,
                "ci_high": fit.ci_high,
                "verdict": v,
                "means": [float(m) for m in fit.means],
                "stderr": [float(s) for s in fit.stderr],
                "h_predicted": [float(math.sqrt(h)) for h in he],
                "h_predicted_init": [float(math.sqrt(h)) for h in init],
                "h_slope": h_slope_he,
                "h_slope_init": h_slope_init,
            },
            {
                "name": "logit_grad_l2_sq",
                "predicted_slope": -1.0,
                "slope": fit_sq.slope,
                "ci_low": fit_sq.ci_low,
                "ci_high": fit_sq.ci_high,
                "verdict": v_sq,
                "means": [float(m) for m in fit_sq.means],
                "stderr": [float(s) for s in fit_sq.stderr],
                "h_predicted": [float(h) for h in he],
                "h_predicted_init": [float(h) for h in init],
            },
        ],
        "second_moments": [c.as_dict() for c in checks],
        "theorem11": thm11,
    }


def _plot(args, setup, fit: SlopeFit, fit_sq: SlopeFit, v: str, v_sq: str, records, he, init, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from verify.plots import loglog_plot

    fig = loglog_plot(
        [fit, fit_sq],
        predicted={"logit_grad_l2": -0.5, "logit_grad_l2_sq": -1.0},
        verdicts={"logit_grad_l2": v, "logit_grad_l2_sq": v_sq},
        records=records,
        title=f"{args.arch} at {setup.sweep[0].dim} px, {args.channels} channels"
        + (f", padding {setup.sweep[0].padding}" if setup.sweep[0].padding else ""),
        xlabel="prod a_i (first window k: a = k^2)",
    )
    xs = np.array(setup.prod_a, dtype=np.float64)
    for ax, power in zip(fig.axes, (0.5, 1.0)):
        ax.plot(xs, he**power, "s", mfc="none", color="C2", label="(H), 2/in-degree")
        ax.plot(xs, init**power, "^", mfc="none", color="C1", label="(H), init variances")
        ax.legend(fontsize=7, loc="best")
    try:
        return atomic_save_figure(fig, path)
    finally:
        plt.close(fig)


def _markdown(args, setup, fit, fit_sq, v, v_sq, checks: list[SecondMomentCheck], h_slope_he, h_slope_init, thm11, device, wall, png_name) -> str:
    spec0 = setup.sweep[0]
    command = args.command_line
    h3 = max(h3_violation_fraction(s) for s in setup.sweep)
    lines = [
        f"# Average pooling: Theorems 10 and 11 on {args.arch}",
        "",
        "Theorem 10: when every path crosses pooling nodes of degrees a_1..a_n, `||d_x f_k||_2 ~ 1/prod sqrt(a_i)`. "
        "The window k of the first pooling layer varies (a = k^2), the others stay fixed; the slope of "
        "log E||d_x f_k||_2 against log prod a_i is predicted to be -1/2.",
        "",
        f"Generated by `{command}`.",
        "",
        "## Settings",
        "",
        f"- net: {spec0.describe()} with first window k in {', '.join(str(w[0]) for w in setup.windows)}",
        f"- {args.samples} He weight draws per net x {args.batch} normal inputs, label uniform, seed {args.seed}",
        f"- fit: least squares on log-means, 95% BCa bootstrap over draws ({args.n_boot} resamples), margin +-{args.margin:g}",
        f"- H3 violation fraction (random-weight neurons whose in-degree differs from the nominal fan-in): {h3:.2%}",
        f"- device: {device} ({torch.get_num_threads()} CPU threads), float32; wall time {wall:.1f} s",
        f"- libraries: {', '.join(f'{k} {val}' for k, val in library_versions().items())}",
        "",
        "## Theorem 10: slope against prod a_i",
        "",
    ]
    rows = [
        ["E||d_x f_k||_2", "-0.5", f"{fit.slope:+.3f}", f"[{fit.ci_low:+.3f}, {fit.ci_high:+.3f}]", f"**{v}**",
         f"{h_slope_he:+.3f}", f"{h_slope_init:+.3f}"],
        ["E||d_x f_k||_2^2", "-1", f"{fit_sq.slope:+.3f}", f"[{fit_sq.ci_low:+.3f}, {fit_sq.ci_high:+.3f}]",
         f"**{v_sq}** (margin {2 * args.margin:g})", f"{2 * h_slope_he:+.3f}", f"{2 * h_slope_init:+.3f}"],
    ]
    lines += [
        markdown_table(["quantity", "predicted", "fitted", "95% CI", "verdict", "(H) slope, 2/in-degree", "(H) slope, init"], rows).rstrip("\n"),
        "",
    ]
    if v == "inconclusive":
        n = samples_to_settle(fit, -0.5, args.margin)
        lines += [f"Inconclusive: {'~' + str(n) + ' draws per net would likely settle it' if n else 'the slope sits on the band edge'}.", ""]
    lines += [
        f"![plot]({png_name})",
        "",
        "## Monte Carlo against the exact (H) value (Eq. 13)",
        "",
        "`(H) he`: E[w^2] = 2/in-degree (ideal H3); `(H) init`: the init's 2/nominal fan-in (differs at zero-padded "
        "borders). MC: mean over draws of the per-draw mean of `||d_x f_c||_2^2`; z = (MC - exact)/s.e. The norm "
        "column compares E||d_x f_c||_2 with sqrt of the (H) value (an upper bound by Jensen).",
        "",
    ]
    rows = []
    for w, pa, c in zip(setup.windows, setup.prod_a, checks):
        rows.append([w[0], pa, f"{format_number(c.mc_sq)} ± {format_number(c.mc_sq_se, 2)}", c.he, c.init, f"{c.rel_he:+.1%}",
                     f"{c.rel_init:+.1%}", f"{c.z_init:+.1f}", f"{format_number(c.mc_norm)} / {format_number(math.sqrt(c.init))}",
                     c.culprit])
    lines += [
        markdown_table(["k", "prod a", "MC E||.||^2", "(H) he", "(H) init", "MC/he - 1", "MC/init - 1", "z (init)",
                        "E||.|| MC / sqrt(H init)", "likely culprit"], rows).rstrip("\n"),
        "",
        _discussion(checks, setup),
        "",
        "## Theorem 11: strided against pooled",
        "",
        f"- strided: {thm11['strided']}",
        f"- pooled: {thm11['pooled']} (each stride s replaced by conv(stride 1) -> ReLU -> avgpool(s))",
        "",
    ]
    rows = [[
        f"{thm11['ratio']:.4g}", f"[{thm11['ci_low']:.4g}, {thm11['ci_high']:.4g}]", f"{thm11['predicted']:.4g}",
        f"{thm11['h_ratio_he']:.4g}", f"{thm11['h_ratio_init']:.4g}",
        "yes" if thm11["contains_predicted"] else "**no**",
        f"{thm11['exponent']:+.3f} [{thm11['exponent_ci'][0]:+.3f}, {thm11['exponent_ci'][1]:+.3f}]", f"**{thm11['verdict']}**",
    ]]
    lines += [
        markdown_table(["pooled/strided E||d_x f_k||_2", "95% CI", "1/prod sqrt(a_i)", "(H) ratio, 2/in-degree",
                        "(H) ratio, init", "CI contains 1/prod sqrt(a_i)", "as exponent e of prod a", "verdict on e (-1/2 +- margin)"], rows).rstrip("\n"),
        "",
        f"prod a_i = {thm11['prod_a']}. Under ideal (H) the strided net gives E||d_x f_k||^2 = 2 and the pooled one "
        "2/prod a_i (Lemma 7: the number of neurons per layer does not enter, only the pooling weights' extra 1/a), so "
        "the (H) ratio is exactly 1/prod sqrt(a_i). "
        + (
            "With the init's variances (zero-padded borders lose mass) the (H) ratio is still 1/prod sqrt(a_i) to rounding: "
            "the two nets lose the same share at their borders, although the strided net's layers are smaller. "
            if abs(thm11["h_ratio_init"] / thm11["predicted"] - 1) < 1e-9
            else "With the init's variances the zero-padded borders lose different shares in the two nets, which moves "
            "the (H) ratio as shown. "
        )
        + "CI: percentile bootstrap over the draws, "
        + ("resampled jointly (draw i of both nets shares its inputs and conv weights). " if thm11["paired"] else "each net's draws on their own. ")
        + "The verdict reads the ratio as prod a^e and applies the slope band to e; that band is "
        "lenient for a large prod a (e +- 0.05 is a factor prod a^0.05 on the ratio), so whether the CI contains "
        "1/prod sqrt(a_i) is stated too.",
        "",
    ]
    rows = [[c["spec"], f"{format_number(c['mc_sq'])} ± {format_number(c['mc_sq_se'], 2)}", c["he"], c["init"],
             f"{c['rel_init']:+.1%}", c["culprit"]] for c in thm11["second_moments"]]
    lines += [markdown_table(["net", "MC E||.||^2", "(H) he", "(H) init", "MC/init - 1", "likely culprit"], rows).rstrip("\n"), ""]
    return "\n".join(lines)


def _discussion(checks: list[SecondMomentCheck], setup: PoolingSetup) -> str:
    worst = max(checks, key=lambda c: abs(c.rel_init))
    parts = [
        f"Largest disagreement with the init-variance (H) value: {worst.rel_init:+.1%} (z = {worst.z_init:+.1f}) at "
        f"{worst.spec}."
    ]
    if any(c.he != c.init for c in checks):
        gap = max(abs(c.init / c.he - 1) for c in checks)
        parts.append(
            f"The ideal and the init-variance (H) values differ by up to {gap:.1%}: that part of any gap to the ideal "
            "value is H3 failing at zero-padded borders."
        )
    z_all = combined_z(checks)
    parts.append(
        f"Over all windows, Monte Carlo sits {np.mean([c.rel_init for c in checks]):+.1%} from the init-variance value on "
        f"average (combined z = {z_all:+.1f}, Stouffer)."
    )
    if z_all > 4 or any(c.z_init > 4 for c in checks):
        parts.append(
            "Monte Carlo exceeds the init-variance value: H1 is the culprit. A ReLU gate depends on its own "
            "neuron's weights and input, and the neurons one pooling node averages read overlapping inputs, so "
            "`E[s_p s_p' w_p w_p']` is positive for paths that part at those neurons and meet at the pooling node; "
            "a random weight after them would cancel these cross terms by sign symmetry, the constant 1/a does not. "
            "Where the excess changes with k, it tilts the measured slope away from the (H) slope."
        )
    return " ".join(parts)
