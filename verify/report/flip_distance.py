"""The flip-distance report (beyond the paper), rendered from a ``FlipResult``."""

from __future__ import annotations

from verify.checks.flip_distance import FlipResult
from verify.report import Rendered
from verify.report.common import VERDICT_RULE
from verify.report.markdown import format_number, interval_text, signed, table
from verify.report.writer import envelope, run_header
from verify.results import RunInfo, Verdict
from verify.theory import FLIP_DISTANCE_PAPERS, FLIP_DISTANCE_SLOPE

__all__ = ["flip_figure", "render_flip_distance"]

_METHOD_TEXT = {
    "line": "line search along the gradient",
    "deepfool": "DeepFool",
    "first-order": "first-order prediction",
}


def flip_figure(result: FlipResult):
    """One log-log panel per method: mean ||delta||_2 / ||x||_2 against d, fit, predicted slope."""
    from verify.report.figures import loglog_grid, loglog_panel

    fig, axes = loglog_grid(len(result.methods), ncols=3)
    for ax, m in zip(axes, result.methods):
        loglog_panel(ax, m.fit, predicted=FLIP_DISTANCE_SLOPE, verdict=m.claim.verdict.value, xlabel="d")
        ax.set_title(f"l_{m.norm}, {_METHOD_TEXT[m.method]}\n||delta||_2/||x||_2: {m.claim.verdict.value}", fontsize=9)
    s0 = result.config.specs[0]
    fig.suptitle(f"{s0.family}: relative flip distance against d (95% error bars)", fontsize=11)
    return fig


def render_flip_distance(result: FlipResult, run: RunInfo) -> Rendered:
    cfg = result.config
    specs = cfg.specs
    s0 = specs[0]
    stem = f"flip-distance-{s0.family}"
    png = f"{stem}.png"
    opts = ", ".join(f"{k}={v}" for k, v in s0.options.items())
    lines = [
        f"# Flip distance against input dimension: {s0.family}",
        "",
        (
            "Beyond the paper. Later work proves that for random ReLU networks a perturbation of l_2 size about "
            "||x|| / sqrt(d) in the gradient's direction changes the output, so the relative flip distance "
            "||delta||_2 / ||x||_2 falls like d^(-1/2):"
        ),
        "",
        *[f"- {p}" for p in FLIP_DISTANCE_PAPERS],
        "",
        (
            "For each weight draw and standard normal input (float64), with c = argmax f(x) the predicted class: the "
            "smallest step along the normalised loss gradient g = d_x L(x, c) (l_2) or along sign(g) (l_inf) that "
            "changes the class (line search: a doubling bracket, a 16-point scan for the first flipped point, then "
            "bisection); the DeepFool iterated minimum (Moosavi-Dezfooli et al. 2016) in l_2 and l_inf; and the "
            "first-order prediction min_k (f_c - f_k) / ||d_x(f_c - f_k)||_q. For these bias-free ReLU nets f is "
            "positively homogeneous, so f(x) = <d_x f(x), x> exactly (Euler's identity, checked below), and the "
            "l_2 prediction relative to ||x||_2 is min_k |cos(x, d_x(f_c - f_k))|: a cosine between the input and a "
            "logit-gap gradient, which is of order 1/sqrt(d) when the gap and the gradient's norm stay of order 1 "
            "(Theorem 5 for the gradient). Every distance is reported as ||delta||_2 / ||x||_2 (an l_inf step "
            "t sign(g) has ||delta||_2 / ||x||_2 = ||delta||_inf / rms(x))."
        ),
        "",
        "## Settings",
        "",
        *run_header(run),
        f"- family: `{s0.family}` ({opts or 'default options'}), {s0.num_classes} classes",
        f"- sizes: dims {', '.join(str(s.dim) for s in specs)}; d = {', '.join(str(s.d) for s in specs)}",
        f"- draws: {cfg.draws} He weight draws per size, {cfg.batch} standard normal inputs per draw, {cfg.dtype}",
        (
            f"- DeepFool: overshoot {cfg.overshoot:g}, at most {cfg.max_iter} iterations; line search up to "
            f"{cfg.t_max:g} ||x||_2 (l_2) or {cfg.t_max:g} rms(x) (l_inf)"
        ),
        (
            f"- fit: least squares on log-means, 95% BCa bootstrap over weight draws ({cfg.n_boot} resamples, paired "
            f"across sizes), margin +-{cfg.margin:g}"
        ),
        "",
        "## Verdicts",
        "",
    ]
    rows = []
    for m in result.methods:
        a, ac = m.asymptotic, m.asymptotic_claim
        rows.append(
            [
                f"l_{m.norm}",
                _METHOD_TEXT[m.method],
                signed(FLIP_DISTANCE_SLOPE, 1),
                signed(m.fit.slope),
                interval_text(m.fit.interval),
                f"**{m.claim.verdict.value}**",
                f"{signed(a.slope)} {interval_text(a.interval)}" if a is not None else "-",
                f"**{ac.verdict.value}**" if ac is not None else "-",
                f"{format_number(m.constant)} {interval_text(m.constant_interval, digits=3)}",
                int(m.failures.sum()),
            ]
        )
    lines += [
        table(
            [
                "norm",
                "method",
                "predicted slope",
                "fitted slope",
                "95% CI",
                "verdict",
                "finite-size beta (95% CI)",
                "asymptotic verdict",
                "constant C (95% CI)",
                "no flip",
            ],
            rows,
        ).rstrip("\n"),
        "",
        VERDICT_RULE.format(margin=cfg.margin),
        "",
        (
            "The constant C is that of E[||delta||_2 / ||x||_2] = C d^(-1/2): the geometric mean over the sizes of "
            "sqrt(d) times the mean ratio, with the same paired bootstrap. 'no flip': inputs where the line search "
            "found no flip up to its limit or DeepFool within its iterations (left out of the means). "
            + (
                "These nets are those the papers prove it for (dense random ReLU nets; their widths conditions aside)."
                if s0.family == "dense"
                else f"`{s0.family}` is beyond the nets the papers prove it for (dense random ReLU nets)."
            )
        ),
        "",
        (
            f"Euler's identity f(x) = <d_x f(x), x>: largest relative residual {format_number(result.homogeneity)} over "
            f"every input ({cfg.dtype}), **{result.homogeneity_claim.verdict.value}** (exact up to rounding)."
        ),
        "",
        (
            f"DeepFool took {result.iterations['l2'][0]:.2f} iterations on average in l_2 (at most "
            f"{result.iterations['l2'][1]:.0f}) and {result.iterations['linf'][0]:.2f} in l_inf (at most "
            f"{result.iterations['linf'][1]:.0f}): the nets are close to linear on the scale of the flip."
        ),
        "",
        "## Per-size constants",
        "",
        (
            "sqrt(d) times the mean of ||delta||_2 / ||x||_2 (constant in d where the prediction holds), and the "
            "measured distance over the first-order prediction (ratio of means; DeepFool includes its overshoot):"
        ),
        "",
    ]
    headers = ["dim", "d", *[f"l_{m.norm} {m.method}" for m in result.methods]]
    headers += [f"l_{m.norm} {m.method} / first order" for m in result.methods if m.to_first_order is not None]
    size_rows = []
    for i, spec in enumerate(specs):
        row = [spec.dim, spec.d, *[format_number(m.per_size_constant[i]) for m in result.methods]]
        row += [format_number(m.to_first_order[i]) for m in result.methods if m.to_first_order is not None]
        size_rows.append(row)
    lines += [
        table(headers, size_rows).rstrip("\n"),
        "",
        "## Plot",
        "",
        f"![relative flip distance against d]({png})",
        "",
        "Means with 95% error bars, the fitted power law (solid) and the predicted slope -1/2 through the data (dotted).",
        "",
    ]
    payload = {
        "arch": s0.family,
        "dims": [s.dim for s in specs],
        "d": [s.d for s in specs],
        "homogeneity_residual": result.homogeneity,
        "deepfool_iterations": {k: {"mean": v[0], "max": v[1]} for k, v in result.iterations.items()},
        "methods": [
            {
                "quantity": m.quantity,
                "norm": m.norm,
                "method": m.method,
                "predicted_slope": FLIP_DISTANCE_SLOPE,
                "slope": m.fit.slope,
                "ci_low": m.fit.ci_low,
                "ci_high": m.fit.ci_high,
                "verdict": m.claim.verdict.value,
                "means": list(m.fit.means),
                "stderr": list(m.fit.stderr),
                "constant": m.constant,
                "constant_interval": m.constant_interval.to_dict(),
                "per_size_constant": list(m.per_size_constant),
                "no_flip": [int(v) for v in m.failures],
                "to_first_order": None if m.to_first_order is None else list(m.to_first_order),
                "asymptotic": None
                if m.asymptotic is None or m.asymptotic_claim is None
                else {
                    "slope": m.asymptotic.slope,
                    "ci_low": m.asymptotic.ci_low,
                    "ci_high": m.asymptotic.ci_high,
                    "verdict": m.asymptotic_claim.verdict.value,
                },
            }
            for m in result.methods
        ],
        "papers": list(FLIP_DISTANCE_PAPERS),
        "report": f"{stem}.md",
        "figure": png,
    }
    summary = table(
        ["norm", "method", "fitted slope", "95% CI", "verdict", "constant C"],
        [
            [
                f"l_{m.norm}",
                m.method,
                signed(m.fit.slope),
                interval_text(m.fit.interval),
                m.claim.verdict.value,
                f"{format_number(m.constant)} {interval_text(m.constant_interval, digits=3)}",
            ]
            for m in result.methods
        ],
    )
    summary += f"Euler's identity: largest relative residual {format_number(result.homogeneity)}\n"
    counts = {v: sum(1 for c in result.claims if c.verdict is v) for v in Verdict}
    summary += ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
    return Rendered(
        stem=stem,
        markdown="\n".join(lines),
        figures={png: flip_figure(result)},
        json=envelope("flip-distance", run, result.claims, payload),
        summary=summary,
    )
