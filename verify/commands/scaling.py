"""``verify scaling``: Monte Carlo over He initialisation, fitted exponents against d, verdicts.

Checks Theorems 4 and 5 and Corollary 6: how the input-gradient norms and the first-order
vulnerability grow with the input dimension d at initialisation, next to the exact (S) and
H3 status of the sampled net (a verdict never hides a broken hypothesis).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from graphs.errors import InputError
from graphs.hypotheses import h3_violation_fraction
from graphs.pathsums import operator_path_sums
from graphs.spec import Spec, parse_dims
from graphs.symmetry import SymmetryVerdict, symmetry_verdict
from verify.engine import EPS_INF, QUANTITIES, measure
from verify.fit import fit_power_law, samples_to_settle, verdict
from verify.options import (
    add_arch_arguments,
    add_fit_arguments,
    add_output_arguments,
    add_sampling_arguments,
    check_fit_arguments,
    check_sampling_arguments,
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
from verify.sampling import INPUT_KINDS

__all__ = ["add_parser", "run", "Prediction", "PREDICTIONS", "DEFAULT_SAMPLES", "DEFAULT_BATCH", "SizeStatus", "size_status"]

# Chosen from a profile of the main command on 2 CPU cores. One sample (forward + two
# backward passes) of the 3x256x256 net costs ~57 ms, ~3/4 of the per-sample cost over
# 32,64,128,256; the exact (S)/H3 checks, fits and plot add ~8 s. 160 draws x 2 inputs keep
# the run near half a minute on an idle machine (a minute with other load) and give 95% CIs
# about +-0.01 wide. Draws, not inputs, set the CI: measured on this net, a draw's mean
# over B inputs has relative variance ~0.085^2 + 0.19^2 / B, so extra inputs per draw buy
# little once B = 2.
DEFAULT_SAMPLES = 160
DEFAULT_BATCH = 2


@dataclass(frozen=True)
class Prediction:
    """The slope a theorem predicts for a quantity, and whether it relies on (S)."""

    slope: float
    needs_symmetry: bool
    source: str
    log_power: float = 0.0


PREDICTIONS: dict[str, Prediction] = {
    "loss_grad_l1": Prediction(0.5, True, "Thm 4/5 + (S), Cor 6: E||g||_1 ~ d^(1 - 1/2)"),
    "loss_grad_l2": Prediction(0.0, False, "Thm 5: eps_2 E||g||_2 ~ sqrt(d), eps_2 = eps_inf sqrt(d)"),
    # max of d coordinates of size 1/sqrt(d): sqrt(2 ln d) / sqrt(d); fitted after dividing by sqrt(ln d)
    "loss_grad_linf": Prediction(-0.5, True, "Thm 4/5 + (S): E||g||_inf ~ d^(-1/2) up to a log factor", 0.5),
    "logit_grad_l2": Prediction(0.0, False, "Thm 5: ||d_x f_k||_2 independent of d"),
    "logit_grad_coord": Prediction(-0.5, True, "Thm 4/5 + (S): coordinates of d_x f_k ~ 1/sqrt(d)"),
    "vuln_linf": Prediction(0.5, True, "Thm 4/5 + (S), Cor 6: eps_inf E||g||_1 ~ sqrt(d)"),
    "vuln_l2": Prediction(0.5, False, "Thm 5: eps_2 E||g||_2 ~ sqrt(d)"),
}

EPILOG = f"""\
examples:
  verify scaling --arch strided-cnn --dims 32,64,128,256                  # the paper's net, about a minute on 2 cores
  verify scaling --arch strided-cnn --dims 32,64,128,256 --padding circular --samples 200
  verify scaling --arch dense --dims 64,256,1024,4096 --samples 32 --json
  verify scaling --arch random-dag --dims 64,128,256,512 --quantities logit_grad_l2,vuln_l2
  verify scaling --arch strided-cnn --dims 32,64,128 --inputs upsampled --device auto

For every size: SAMPLES He-initialised weight draws (default {DEFAULT_SAMPLES}) and BATCH standard
normal inputs per draw (default {DEFAULT_BATCH}), labels uniform over the classes. Per sample:
||d_x L||_1, ||d_x L||_2, ||d_x L||_inf, ||d_x f_c||_2, mean |coordinate| of d_x f_c
(c the label) and the vulnerabilities eps_p ||d_x L||_q with eps_p = eps_inf d^(1/p),
p = inf, 2. The slope of log E[Q] against log d is fitted by least squares; its 95% CI is a
bootstrap over weight draws (inputs of one draw share its weights, so they are averaged
first; draw i of every size comes from (seed, i), so ids are resampled jointly). A verdict is 'consistent' when the whole CI lies in predicted +- MARGIN,
'inconsistent' when the CI misses that band, 'inconclusive' otherwise (with the draws that
would likely settle it). ||d_x L||_inf is predicted up to a log factor: it is fitted after
dividing by sqrt(ln d) (its raw slope is reported too).

The defaults keep the main command within about a minute on 2 CPU cores (about half a
minute on an idle machine): the 3x256x256 size dominates (~57 ms per sample for one forward
and two backward passes, channels-last float32), and the interval's width is set by the
number of weight draws (inputs of one draw share its weights), so the budget goes to draws
(SAMPLES) rather than inputs per draw (BATCH). The width shrinks like 1/sqrt(SAMPLES): 4x
the draws halve it. Below ~100 draws the bootstrap interval tends to be too narrow.

The report (OUT_DIR/scaling-ARCH.md, plot beside it) carries the exact (S) and H3 status of
every sampled net; with zero padding both fail at the image boundary, and (S) fails for 3x3
stride-2 convolutions even with circular padding, so the predictions that rely on (S) are
then not implied by the theorems: the report says so next to the verdicts.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "scaling",
        help="Monte Carlo slopes of gradient norms and vulnerability against d (Thm 4, 5, Cor 6)",
        description=(
            "Sample He-initialised nets at several input sizes, measure per-sample input gradients, "
            "fit the exponent of each quantity against d with a bootstrap CI and compare it with the theorems."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arch_arguments(parser)
    parser.add_argument("--dims", required=True, help="comma-separated sizes (>= 2): image side n for CNNs, d otherwise")
    add_sampling_arguments(parser, samples=DEFAULT_SAMPLES, batch=DEFAULT_BATCH)
    parser.add_argument("--inputs", default="normal", choices=INPUT_KINDS, help="standard normal inputs, or normal images at the smallest size upsampled by copying pixels (default normal)")
    parser.add_argument("--quantities", default=None, help=f"comma-separated subset of: {', '.join(QUANTITIES)} (default all)")
    parser.add_argument("--eps-inf", type=float, default=EPS_INF, help=f"l_inf budget of the vulnerabilities (default {EPS_INF}; scales them, never their slope)")
    add_fit_arguments(parser)
    add_output_arguments(parser)
    parser.set_defaults(func=run)
    return parser


@dataclass
class SizeStatus:
    """The exact side of one sampled size: (S), H3, and the range of d * P(x, o)."""

    spec: Spec
    symmetry: SymmetryVerdict
    h3_fraction: float
    dp_min: float
    dp_max: float


def size_status(spec: Spec) -> SizeStatus:
    """(S) (exact on small DAGs, randomised with a certificate otherwise), H3 and d*P(x, o) range."""
    scaled = spec.d * operator_path_sums(spec).numpy()
    return SizeStatus(spec, symmetry_verdict(spec), h3_violation_fraction(spec), float(scaled.min()), float(scaled.max()))


def _parse_quantities(text: str | None) -> list[str]:
    if text is None:
        return list(QUANTITIES)
    names = [q.strip() for q in text.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUANTITIES]
    if unknown:
        raise InputError(f"--quantities: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(QUANTITIES)}")
    if not names:
        raise InputError(f"--quantities: give at least one of {', '.join(QUANTITIES)}")
    return list(dict.fromkeys(names))


def _validate(args: argparse.Namespace):
    dims = parse_dims(args.dims, at_least=2)
    # Ascending d: the fits sort by d, and every per-size table pairs specs[i] with means[i].
    specs = sorted(specs_from_args(args, dims), key=lambda s: s.d)
    if specs[0].num_classes < 2:
        raise InputError(f"--classes: {specs[0].num_classes} class(es) make the cross-entropy identically 0; give --classes 2 or more")
    check_sampling_arguments(args)
    check_fit_arguments(args)
    if not args.eps_inf > 0 or not math.isfinite(args.eps_inf):
        raise InputError(f"--eps-inf: {args.eps_inf} is not positive; give e.g. --eps-inf 0.005")
    quantities = _parse_quantities(args.quantities)
    if args.inputs == "upsampled":
        base = min(dims)
        bad = [n for n in dims if n % base]
        if bad:
            raise InputError(f"--inputs upsampled: sizes {bad} are not multiples of the smallest size {base}; use e.g. --dims 32,64,128")
    device = resolve_device(args.device)
    out_dir = ensure_writable_dir(args.out_dir)
    return specs, quantities, device, out_dir


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    specs, quantities, device, out_dir = _validate(args)
    status = [size_status(spec) for spec in specs]
    records = measure(
        specs,
        samples=args.samples,
        batch=args.batch,
        seed=args.seed,
        device=device,
        inputs=args.inputs,
        progress=not args.json and sys.stderr.isatty(),
        eps_inf=args.eps_inf,
    )
    results = []
    for q in quantities:
        pred = PREDICTIONS[q]
        fit = fit_power_law(records, q, "d", n_boot=args.n_boot, seed=args.seed, log_power=pred.log_power)
        results.append((q, pred, fit, verdict(fit, pred.slope, args.margin)))
    arch = args.arch
    png = out_dir / f"scaling-{arch}.png"
    _plot(results, specs[0], png)
    wall = time.perf_counter() - start
    report = _markdown(args, specs, status, results, device, wall, png.name)
    md = atomic_write_text(out_dir / f"scaling-{arch}.md", report)
    if args.json:
        print(json_text(_json(args, specs, status, results)))
    else:
        rows = [[q, p.slope, f.slope, f"[{f.ci_low:.3f}, {f.ci_high:.3f}]", v] for q, p, f, v in results]
        print(markdown_table(["quantity", "predicted", "fitted", "95% CI", "verdict"], rows), end="")
        for line in _hypothesis_lines(status):
            print(line)
        print(f"report: {md}  plot: {png}")
    wall = time.perf_counter() - start
    print(f"wall time: {wall:.1f} s", file=sys.stderr if args.json else sys.stdout)
    return 0



def _json(args, specs: list[Spec], status: list[SizeStatus], results) -> dict:
    return {
        "arch": args.arch,
        "padding": specs[0].padding,
        "dims": [s.dim for s in specs],
        "d": [s.d for s in specs],
        "seed": args.seed,
        "samples": args.samples,
        "symmetric": all(bool(st.symmetry.symmetric) for st in status),
        "h3_violation_fraction": max(st.h3_fraction for st in status),
        "quantities": [
            {
                "name": q,
                "predicted_slope": p.slope,
                "slope": f.slope,
                "ci_low": f.ci_low,
                "ci_high": f.ci_high,
                "verdict": v,
                "means": list(f.means),
                "stderr": list(f.stderr),
            }
            for q, p, f, v in results
        ],
    }


def _plot(results, spec0: Spec, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from verify.plots import loglog_plot

    fig = loglog_plot(
        [f for _, _, f, _ in results],
        predicted={q: p.slope for q, p, _, _ in results},
        verdicts={q: v for q, _, _, v in results},
        title=f"{spec0.family}" + (f", padding {spec0.padding}" if spec0.padding else "") + ": E[Q] against d (95% error bars)",
        xlabel="d",
    )
    try:
        return atomic_save_figure(fig, path)
    finally:
        plt.close(fig)


def _symmetry_cell(v: SymmetryVerdict) -> str:
    exact = v.method == "dag-polynomial"
    if v.symmetric:
        return "holds (exact)" if exact else f"holds (randomised, p_fp <= {v.false_positive_bound:.1e})"
    return "fails (exact)" if exact else "fails (certified counter-example)"


def _hypothesis_lines(status: list[SizeStatus]) -> list[str]:
    """Plain statements about (S) and H3 of the sampled nets, for the verdicts' side."""
    lines = []
    s_fail = [st.spec.dim for st in status if not st.symmetry.symmetric]
    h3_fail = [st.spec.dim for st in status if st.h3_fraction > 0]
    if s_fail:
        lines.append(
            f"(S) FAILS at sizes {s_fail}: the theorems do not imply the slopes of the quantities marked "
            "'needs (S)'; their verdicts test the prediction anyway, they do not test the theorem."
        )
    else:
        lines.append("(S) holds at every size.")
    if h3_fail:
        worst = max(st.h3_fraction for st in status)
        lines.append(
            f"H3 FAILS at sizes {h3_fail} (up to {worst:.2%} of the random-weight neurons have an in-degree other "
            "than the fan-in He initialisation uses): no verdict here is implied by the theorems."
        )
    else:
        lines.append("H3 holds at every size.")
    return lines


def _markdown(args, specs, status, results, device, wall: float, png_name: str) -> str:
    spec0 = specs[0]
    versions = library_versions()
    opts = ", ".join(f"{k}={v}" for k, v in spec0.options.items())
    command = args.command_line
    s_fails = any(not st.symmetry.symmetric for st in status)
    h3_fails = any(st.h3_fraction > 0 for st in status)
    lines = [
        f"# Scaling with input dimension: {args.arch}",
        "",
        "Theorems 4 and 5 and Corollary 6 of Simon-Gabriel et al. (2019) at He initialisation: the slope of "
        "log E[Q] against log d for each quantity Q, fitted on Monte Carlo samples, compared with the slope the "
        "theorems predict.",
        "",
        f"Generated by `{command}`.",
        "",
        "## Settings",
        "",
        f"- family: `{args.arch}` ({opts or 'default options'}), {spec0.num_classes} classes",
        f"- padding: {spec0.padding if spec0.padding else 'n/a (no convolutions)'}",
        f"- sizes: dims {', '.join(str(s.dim) for s in specs)}; d = {', '.join(str(s.d) for s in specs)}",
        f"- samples: {args.samples} He weight draws per size, batch {args.batch} {args.inputs} inputs per draw, "
        f"seed {args.seed} (draw i uses (seed, i))",
        f"- vulnerability budget: eps_inf = {args.eps_inf:g}, eps_p = eps_inf d^(1/p)",
        f"- fit: least squares on log-means, 95% BCa bootstrap over weight draws ({args.n_boot} resamples, "
        f"seed {args.seed}; draw i of every size comes from (seed, i), so draws are resampled by id jointly across "
        f"sizes), margin +-{args.margin:g}",
        f"- device: {device} ({torch.get_num_threads()} CPU threads), float32",
        f"- libraries: {', '.join(f'{k} {v}' for k, v in versions.items())}",
        f"- wall time: {wall:.1f} s",
        "",
        "## Hypotheses of the sampled nets",
        "",
        "Exact side, from `graphs/`: (S) by the path-degree polynomials (exact DAG for small nets, a randomised "
        "identity test otherwise, whose 'fails' is a certificate), H3 as the fraction of random-weight neurons whose "
        "in-degree differs from the fan-in the initialisation uses, and the range of d * P(x, o) over inputs and "
        "logits (1 everywhere under (S), Lemma 8).",
        "",
        markdown_table(
            ["dim", "d", "(S)", "H3 violation fraction", "min d*P(x,o)", "max d*P(x,o)"],
            [[st.spec.dim, st.spec.d, _symmetry_cell(st.symmetry), st.h3_fraction, st.dp_min, st.dp_max] for st in status],
        ).rstrip("\n"),
        "",
        *[f"**{line}**" if "FAILS" in line else line for line in _hypothesis_lines(status)],
        "",
        "## Verdicts",
        "",
    ]
    if s_fails or h3_fails:
        broken = [n for n, b in (("(S)", s_fails), ("H3", h3_fails)) if b]
        lines += [
            f"**Warning: {' and '.join(broken)} {'fail' if len(broken) > 1 else 'fails'} for this net (see above).** "
            "The verdicts below say whether the measured "
            "slopes match the predicted ones; where a needed hypothesis fails, an 'inconsistent' verdict is not a "
            "counter-example to the theorem and a 'consistent' one does not confirm it.",
            "",
        ]
    rows = []
    for q, p, f, v in results:
        notes = []
        if p.needs_symmetry and s_fails:
            notes.append("(S) fails: not implied")
        if h3_fails:
            notes.append("H3 fails")
        if v == "inconclusive":
            n = samples_to_settle(f, p.slope, args.margin)
            notes.append(
                f"~{n} draws per size would likely settle it" if n else "slope on the band's edge: >100x the draws needed"
            )
        if p.log_power:
            notes.append(f"fit of E[Q]/sqrt(ln d); raw slope {f.raw_slope:+.3f}")
        rows.append(
            [
                q,
                f"{p.slope:+g}",
                "yes" if p.needs_symmetry else "no",
                f"{f.slope:+.3f}",
                f"[{f.ci_low:+.3f}, {f.ci_high:+.3f}]",
                f"**{v}**",
                "; ".join(notes) or "-",
            ]
        )
    lines += [
        markdown_table(["quantity", "predicted slope", "needs (S)", "fitted slope", "95% CI", "verdict", "notes"], rows).rstrip(
            "\n"
        ),
        "",
        f"Consistent: the whole 95% CI lies in predicted +-{args.margin:g}; inconsistent: the CI misses that band; "
        "inconclusive: neither (the CI width shrinks like 1/sqrt(draws)).",
        "",
        "`loss_grad_linf`: Theorems 4/5 give E||g||_inf ~ d^(-1/2) only up to a logarithmic factor (the largest of d "
        "coordinates of size 1/sqrt(d) grows like sqrt(2 ln d)). It is therefore fitted as log(E||g||_inf / sqrt(ln d)) "
        "against log d and compared with -1/2; the raw slope (without the correction) is in the notes.",
        "",
        "Predictions: " + "; ".join(f"`{q}`: {p.source}" for q, p, _, _ in results) + ".",
        "",
    ]
    local = []
    for i in range(1, len(specs)):
        dx = math.log(specs[i].d / specs[i - 1].d)
        local.append(
            [
                f"{specs[i - 1].dim} -> {specs[i].dim}",
                *[f"{(math.log(f.means[i] / f.means[i - 1]) - p.log_power * math.log(math.log(specs[i].d) / math.log(specs[i - 1].d))) / dx:+.3f}" for _, p, f, _ in results],
            ]
        )
    lines += [
        "Local slopes between consecutive sizes (point estimates, same log correction as the fit): where a hypothesis "
        "fails only near the boundary, they drift towards the prediction as d grows and the boundary's share shrinks.",
        "",
        markdown_table(["sizes", *[q for q, _, _, _ in results]], local).rstrip("\n"),
        "",
    ]
    if spec0.padding == "zeros" and h3_fails:
        lines += [
            "With zero padding, neurons at the image border have fewer inputs than the fan-in He initialisation "
            "assumes (H3 fails there), which damps the gradient most at small sizes, where the border holds a larger "
            "share of the neurons. To separate this effect, rerun with `--padding circular` (H3 then holds; (S) still "
            "fails for 3x3 stride-2 convolutions).",
            "",
        ]
    lines += ["## Per-size means (standard error over weight draws)", ""]
    header = ["dim", "d", *[q for q, _, _, _ in results]]
    table = []
    for i, spec in enumerate(specs):
        table.append([spec.dim, spec.d, *[f"{format_number(f.means[i])} ± {format_number(f.stderr[i], 2)}" for _, _, f, _ in results]])
    lines += [
        markdown_table(header, table).rstrip("\n"),
        "",
        f"Each mean is over {args.samples} draws x {args.batch} inputs; the standard error is that of the per-draw means.",
        "",
        "## Plot",
        "",
        f"![log-log plot of E[Q] against d]({png_name})",
        "",
        "Means with 95% error bars, the fitted power law (solid) and the predicted slope drawn through the data's centre (dashed).",
        "",
    ]
    return "\n".join(lines)
