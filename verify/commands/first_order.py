"""``verify first-order``: how much of the real adversarial damage the first-order term explains.

Lemma 2 (loss increase of one-step and PGD attacks over eps_p ||d_x L||_q), Prop. 3
(augmented vs penalised loss), Eq. 3 (signal-to-noise ratio under eps_p = eps_inf d^(1/p))
and Remark 1 (||d_x L||^2 against the error term of the softmax), at He initialisation.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphs.errors import InputError
from graphs.spec import parse_dims
from verify.attacks import PGD_NORMS, norm_label, parse_norm
from verify.first_order import (
    largest_eps_within,
    measure_first_order,
    pgd_linear_efficiency,
    summarise_lemma2,
    summarise_prop3,
    summarise_remark1,
    summarise_snr,
)
from verify.options import (
    add_arch_arguments,
    add_output_arguments,
    add_sampling_arguments,
    check_sampling_arguments,
    positive_int,
    specs_from_args,
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

__all__ = ["add_parser", "run", "parse_eps", "parse_norms"]

EPILOG = """\
examples:
  verify first-order --arch dense --dims 256,1024,4096 --eps 1e-4,1e-3,1e-2,1e-1
  verify first-order --arch dense --dims 256,1024 --norms inf --samples 32 --json
  verify first-order --arch strided-cnn --dims 16,32 --channels 16 --samples 8 --batch 8
  verify first-order --arch dense --dims 256,1024 --pgd-steps 30   # a PGD that converges

eps is eps_inf; each norm p uses eps_p = eps_inf * d^(1/p) (Eq. 3). The Lemma 2 ratio is
E[L(x + delta) - L(x)] / E[eps_p ||d_x L||_q] per weight draw; intervals are over draws.
"""

TOL = 0.1


def parse_eps(text: str) -> list[float]:
    """``"1e-4,1e-3"`` -> sorted distinct positive finite floats (at least two, to fit an order)."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise InputError(f"--eps: {part!r} is not a number; give values like --eps 1e-4,1e-3,1e-2") from None
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"--eps: {part} is not a positive finite number; give values like --eps 1e-4,1e-3")
        out.append(value)
    if len(set(out)) < 2:
        raise InputError("--eps: give at least two distinct values, to fit the order in eps; e.g. --eps 1e-4,1e-3,1e-2")
    return sorted(set(out))


def parse_norms(text: str) -> list[float]:
    """``"inf,2"`` -> attack norms (those PGD supports), distinct, in the given order."""
    out: list[float] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            p = parse_norm(part)
        except ValueError:
            p = None
        if p not in PGD_NORMS:
            raise InputError(f"--norms: unknown norm {part!r}; choose from inf,2")
        if p in out:
            raise InputError(f"--norms: {part} given twice; give each norm once")
        out.append(p)
    return out


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "first-order",
        help="Lemma 2 vs real attacks, Prop. 3, Eq. 3 SNR and Remark 1 at initialisation",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arch_arguments(parser)
    parser.add_argument("--dims", default="256,1024,4096", help="input sizes (comma-separated; default 256,1024,4096)")
    parser.add_argument("--eps", default="1e-4,1e-3,1e-2,1e-1", help="eps_inf values, at least two (default 1e-4,1e-3,1e-2,1e-1)")
    parser.add_argument("--norms", default="inf,2", help="attack norms, a subset of inf,2 (default inf,2)")
    add_sampling_arguments(parser, samples=16, batch=32)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="precision (default float64: the small-eps differences need it)")
    parser.add_argument("--pgd-steps", type=int, default=7, help="PGD steps (default 7, the paper's section 4.1)")
    parser.add_argument("--pgd-step-size", type=float, default=0.2, help="PGD step as a fraction of eps (default 0.2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the work is many small ops, for which intra-op threads "
                        "cost more in synchronisation than they gain, badly so on a busy machine)")
    add_output_arguments(parser)
    parser.set_defaults(func=run)
    return parser



def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict(orient="records")


def _ci(m, lo, hi) -> str:
    return f"{format_number(m, 5)} [{format_number(lo, 5)}, {format_number(hi, 5)}]"


def _plot(lemma2: pd.DataFrame, limits: dict, arch: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    ds = sorted(lemma2["d"].unique())
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"inf": ("-", "o"), "2": ("--", "s")}
    for ax, attack in zip(axes, ("one-step", "pgd")):
        ax.axhspan(1 - TOL, 1 + TOL, color="0.9", zorder=0, label=f"within {TOL:.0%} of 1")
        ax.axhline(1.0, color="k", lw=0.8)
        for i, d in enumerate(ds):
            for norm, (ls, mk) in styles.items():
                sub = lemma2[(lemma2["d"] == d) & (lemma2["norm"] == norm) & (lemma2["attack"] == attack)]
                if sub.empty:
                    continue
                sub = sub.sort_values("eps_inf")
                err = np.vstack([sub["ratio"] - sub["ci_low"], sub["ci_high"] - sub["ratio"]])
                ax.errorbar(sub["eps_inf"], sub["ratio"], yerr=err, ls=ls, marker=mk, color=colors[i % len(colors)],
                            capsize=3, label=f"d={d}, p={norm}")
        if attack == "pgd":
            for norm, lim in limits.items():
                ax.axhline(lim, color="0.4", ls=":", lw=1)
                ax.annotate(f"linear-model limit, p={norm}: {lim:.3f}", (0.02, lim), xycoords=("axes fraction", "data"),
                            fontsize=7, va="bottom", color="0.3")
        ax.set_xscale("log")
        ax.set_xlabel("eps_inf  (eps_p = eps_inf d^(1/p))")
        ax.set_title(f"{arch}: {attack} attack")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("E[L(x+delta) - L(x)] / E[eps_p ||d_x L||_q]")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def run(args: argparse.Namespace) -> int:
    # Validate everything before the Monte Carlo.
    dims = parse_dims(args.dims)
    specs = specs_from_args(args, dims)
    if specs[0].num_classes < 2:
        raise InputError(f"--classes: {specs[0].num_classes} class(es) make the cross-entropy identically 0; give --classes 2 or more")
    eps = parse_eps(args.eps)
    norms = parse_norms(args.norms)
    check_sampling_arguments(args)
    samples, batch = args.samples, args.batch
    steps = positive_int("--pgd-steps", args.pgd_steps, 1)
    threads = positive_int("--threads", args.threads, 1)
    if not (math.isfinite(args.pgd_step_size) and args.pgd_step_size > 0):
        raise InputError(f"--pgd-step-size: {args.pgd_step_size} is not a positive number; e.g. --pgd-step-size 0.2")
    device = resolve_device(args.device)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    out_dir = ensure_writable_dir(args.out_dir)
    report_path = Path(out_dir) / f"first-order-{args.arch}.md"
    figure_path = Path(out_dir) / f"first-order-{args.arch}.png"

    start = time.perf_counter()
    progress = not args.json and sys.stderr.isatty()
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        records = measure_first_order(
            specs, eps_inf=eps, norms=norms, samples=samples, batch=batch, seed=args.seed, device=device,
            dtype=dtype, pgd_steps=steps, pgd_step_size=args.pgd_step_size, progress=progress,
        )
    finally:
        torch.set_num_threads(saved_threads)
    lemma2 = summarise_lemma2(records)
    within = largest_eps_within(lemma2, TOL)
    prop3, prop3_fit = summarise_prop3(records, seed=args.seed)
    snr = summarise_snr(records)
    remark1 = summarise_remark1(records, seed=args.seed)
    limits = {
        norm_label(p): pgd_linear_efficiency(p, max(s.d for s in specs), steps=steps, step_size=args.pgd_step_size,
                                             batch=max(8, min(256, 2**22 // max(s.d for s in specs))), seed=args.seed)
        for p in norms
    }
    elapsed = time.perf_counter() - start

    fig = _plot(lemma2, limits, args.arch)
    text = _report(args, specs, eps, norms, samples, batch, steps, lemma2, within, prop3, prop3_fit, snr, remark1,
                   limits, elapsed, figure_path.name, device=device)
    import matplotlib.pyplot as plt

    atomic_save_figure(fig, figure_path)
    plt.close(fig)
    atomic_write_text(report_path, text)

    if args.json:
        out = {
            "command": "first-order",
            "arch": args.arch,
            "dims": dims,
            "d": [s.d for s in specs],
            "eps_inf": eps,
            "norms": [norm_label(p) for p in norms],
            "samples": samples,
            "batch": batch,
            "seed": args.seed,
            "dtype": args.dtype,
            "pgd": {"steps": steps, "step_size": args.pgd_step_size, "random_start": True,
                    "linear_model_limit": limits},
            "lemma2": _records(lemma2),
            "largest_eps_within_10pct": _records(within),
            "prop3": _records(prop3),
            "prop3_order": _records(prop3_fit),
            "snr": _records(snr),
            "remark1": _records(remark1),
            "report": str(report_path),
            "figure": str(figure_path),
            "elapsed_s": elapsed,
        }
        print(json_text(out))
    else:
        print(f"wrote {report_path} and {figure_path} ({elapsed:.1f} s)")
    return 0


def _report(args, specs, eps, norms, samples, batch, steps, lemma2, within, prop3, prop3_fit, snr, remark1,
            limits, elapsed, figure_name, *, device) -> str:
    ds = [s.d for s in specs]
    labels = [norm_label(p) for p in norms]
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    lines = [
        f"# First-order checks: {args.arch}",
        "",
        f"Command: `{args.command_line}`",
        "",
        f"- architecture `{args.arch}`, sizes {', '.join(str(s.dim) for s in specs)} (d = {', '.join(map(str, ds))}), "
        f"{samples} weight draws per size x {batch} standard-normal inputs, labels uniform over {specs[0].num_classes}",
        f"- He initialisation, seed {args.seed}, {args.dtype} on {device}; eps_inf in {', '.join(map(str, eps))}; "
        f"norms {', '.join(labels)}; eps_p = eps_inf d^(1/p) (Eq. 3)",
        f"- PGD: random start, {steps} steps of {args.pgd_step_size} eps_p, projection, final iterate",
        f"- {versions}; {elapsed:.1f} s",
        "- intervals: 95% t-intervals over weight draws (the independent unit), bootstrap over draws for fits",
        "",
        "## Lemma 2: loss increase over eps_p ||d_x L||_q",
        "",
        "Per draw, ratio = mean over inputs of L(x + delta) - L(x) divided by the mean of eps_p ||d_x L||_q; "
        "one-step = the optimal first-order attack (eps sign(g) for p = inf, eps g/||g||_2 for p = 2).",
        "",
        f"![ratio against eps]({figure_name})",
        "",
    ]
    rows = []
    for (d, norm, e_inf), grp in lemma2.groupby(["d", "norm", "eps_inf"], sort=True):
        one = grp[grp["attack"] == "one-step"].iloc[0]
        pgd = grp[grp["attack"] == "pgd"].iloc[0]
        rows.append([int(d), norm, e_inf, one["eps"], _ci(one["ratio"], one["ci_low"], one["ci_high"]),
                     _ci(pgd["ratio"], pgd["ci_low"], pgd["ci_high"])])
    lines += [markdown_table(["d", "p", "eps_inf", "eps_p", "one-step ratio [95% CI]", "PGD ratio [95% CI]"], rows)]
    lines += [
        f"Largest eps_inf at which the whole interval stays within {TOL:.0%} of 1 (there and at every smaller eps; "
        "'-' where even the smallest fails):",
        "",
    ]
    wrows = []
    for d in ds:
        row = [d]
        for norm in labels:
            for attack in ("one-step", "pgd"):
                hit = within[(within["d"] == d) & (within["norm"] == norm) & (within["attack"] == attack)]
                row.append(None if hit.empty or math.isnan(hit["largest_eps_inf"].iloc[0]) else hit["largest_eps_inf"].iloc[0])
        wrows.append(row)
    lines += [markdown_table(["d", *[f"p={n} {a}" for n in labels for a in ("one-step", "PGD")]], wrows)]
    lim_text = ", ".join(f"p = {n}: {v:.4f}" for n, v in limits.items())
    travel = steps * args.pgd_step_size
    # The schedule actually run, not the paper's default: the explanation must match the numbers.
    reach = (
        f"From a random start, {steps} steps of {args.pgd_step_size:g} eps travel {travel:g} eps, "
        + ("short of the 2 eps to the far corner of the l_inf cube, hence a limit below 1."
           if travel < 2 else "enough to reach the far corner of the l_inf cube.")
    )
    lines += [
        f"PGD reference: on a linear model this PGD schedule reaches, on average, this fraction of the optimum "
        f"eps ||g||_q ({lim_text}; d = {max(ds)}). That is the small-eps limit of the PGD ratio on a net; a "
        f"PGD that converges (e.g. `--pgd-steps 30`) has limit 1. {reach}",
        "",
        "## Proposition 3: augmented vs penalised loss",
        "",
        "diff = L~_eps (Eq. 5, optimal unit attack of norm p) - L_eps (Eq. 4, dual norm q), at eps = eps_p. "
        "Prop. 3 says diff = o(eps): |diff|/eps -> 0, i.e. order > 1 in the fit of log E|diff| on log eps "
        "(a twice-differentiable loss gives 2).",
        "",
    ]
    prow = [[int(r["d"]), r["norm"], r["eps_inf"], r["eps"], _ci(r["diff_over_eps"], r["ci_low"], r["ci_high"])]
            for _, r in prop3.iterrows()]
    lines += [markdown_table(["d", "p", "eps_inf", "eps_p", "E\\|diff\\|/eps [95% CI]"], prow)]
    frow = []
    for _, r in prop3_fit.iterrows():
        verdict = "o(eps)" if r["ci_low"] > 1 else ("not o(eps)" if r["ci_high"] < 1 else "inconclusive")
        frow.append([int(r["d"]), r["norm"], _ci(r["order"], r["ci_low"], r["ci_high"]),
                     ", ".join(format_number(v, 3) for v in r["local_orders"]), verdict])
    lines += [markdown_table(["d", "p", "order in eps [95% bootstrap CI]", "local orders (consecutive eps)", "verdict"], frow)]
    lines += [
        "## Eq. 3 / Appendix C: signal-to-noise ratio ||x||_2 / ||delta||_2",
        "",
        "Mean over inputs of ||x||_2/||delta||_2, times eps_inf (so a constant column means the SNR depends on "
        "eps_inf only). Pixel-sized perturbations (every coordinate moved by about eps_inf: the l_inf and l_2 "
        "attacks) keep it constant across p and d; the optimal l_1 attack moves one coordinate by eps_1 = eps_inf d "
        "and is shown as the contrast (its SNR falls like 1/sqrt(d)).",
        "",
    ]
    snr_rows = []
    for (norm, attack, e_inf), grp in snr.groupby(["norm", "attack", "eps_inf"], sort=True):
        row = [norm, attack, e_inf]
        for d in ds:
            hit = grp[grp["d"] == d]
            row.append(hit["snr_times_eps_inf"].iloc[0] if not hit.empty else None)
        snr_rows.append(row)
    lines += [markdown_table(["p", "attack", "eps_inf", *[f"d={d}" for d in ds]], snr_rows)]
    pix = snr[(snr["norm"].isin(["inf", "2"])) & (snr["attack"] == "one-step")]["snr_times_eps_inf"]
    if not pix.empty:
        lines += [
            f"One-step l_inf and l_2 attacks, all d and eps: SNR x eps_inf from {format_number(pix.min(), 5)} "
            f"to {format_number(pix.max(), 5)} (max/min {format_number(pix.max() / pix.min(), 5)}).",
            "",
        ]
    lines += [
        "## Remark 1 / Eq. 9-10: ||d_x L||_2^2 against the softmax error",
        "",
        "Eq. 9: d_x L = sum_k (q_k - 1[k=c]) d_x f_k (the paper writes it with the opposite overall sign; norms "
        "are unaffected). If the K logit gradients are uncorrelated with equal mean square norm G (Lemma 9 "
        "gives this in expectation over weights), E[||d_x L||_2^2 | q] = G ((1-q_c)^2 + sum_{k!=c} q_k^2): the "
        "regression over samples has slope G and intercept 0. G measured directly is the mean over k of "
        "||d_x f_k||_2^2; the mean cosine between distinct logit gradients checks the uncorrelated assumption.",
        "",
    ]
    rrows = [[int(r["d"]), _ci(r["slope"], r["slope_ci_low"], r["slope_ci_high"]), r["intercept"], r["r2"],
              _ci(r["slope_origin"], r["origin_ci_low"], r["origin_ci_high"]),
              _ci(r["logit_grad_sq"], r["logit_grad_sq_ci_low"], r["logit_grad_sq_ci_high"]),
              _ci(r["logit_grad_cos"], r["cos_ci_low"], r["cos_ci_high"]), r["q_term_mean"], r["q_term_sd"]]
             for _, r in remark1.iterrows()]
    lines += [markdown_table(["d", "OLS slope [CI]", "intercept", "R^2", "slope through 0 [CI]",
                              "mean \\|\\|d_x f_k\\|\\|_2^2 [CI]", "mean cos(d_x f_k, d_x f_j)", "mean q-term", "sd q-term"],
                             rrows)]
    return "\n".join(lines)
