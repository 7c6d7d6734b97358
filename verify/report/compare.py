"""The comparison report: one table of slopes per architecture, the hypotheses of each, one plot."""

from __future__ import annotations

import numpy as np

from verify.checks.compare import QUANTITIES, CompareResult, consistent_with_sqrt_d, explanation
from verify.report import Rendered
from verify.report.common import HYPOTHESES_LEGEND, VERDICT_RULE, hypotheses_cell, symmetry_cell
from verify.report.markdown import format_number, interval_text, signed, table
from verify.report.writer import envelope, run_header
from verify.results import RunInfo

__all__ = ["compare_figure", "render_compare"]

_TITLES = {
    "vuln_linf": "eps_inf E||d_x L||_1 (l_inf vulnerability)",
    "vuln_l2": "eps_2 E||d_x L||_2 (l_2 vulnerability)",
    "logit_grad_l2": "E||d_x f_c||_2",
}


def compare_figure(result: CompareResult):
    """One panel per quantity, every architecture on the same log-log axes; one legend below
    all panels, each fitted slope written at the end of its line."""
    from verify.report.figures import label_log_axes, new_figure

    fig, axes = new_figure(1, len(QUANTITIES), figsize=(5.0 * len(QUANTITIES), 4.6))
    d_all = np.unique(np.concatenate([a.fit(QUANTITIES[0]).xs for a in result.archs]))
    handles: list = []
    for ax, q in zip(axes.flat, QUANTITIES):
        predicted = 0.5 if q.startswith("vuln") else 0.0
        anchors = []
        handles = []
        for k, a in enumerate(result.archs):
            fit = a.fit(q)
            color = f"C{k % 10}"
            ax.errorbar(fit.xs, fit.means, yerr=1.96 * np.nan_to_num(fit.stderr), fmt="o", color=color, capsize=3, ms=4)
            grid = np.geomspace(fit.xs.min(), fit.xs.max(), 30)
            (line,) = ax.plot(grid, fit.predict(grid), color=color, lw=1.4, label=a.label)
            handles.append(line)
            ax.annotate(
                f"{fit.slope:+.2f}",
                (fit.xs[-1], float(fit.predict(fit.xs[-1]))),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=7,
                color=color,
                va="center",
            )
            anchors.append(fit.means[0])
        # the theorems' slope, through the geometric mean of the smallest size's means
        base = float(np.exp(np.mean(np.log(anchors))))
        grid = np.geomspace(d_all.min(), d_all.max(), 30)
        (theory,) = ax.plot(
            grid, base * (grid / d_all.min()) ** predicted, ":", color="0.3", lw=1.4, label="theorems' slope"
        )
        handles.append(theory)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(d_all.min() / 1.3, d_all.max() * 1.9)  # room for the slopes written at the right
        ax.set_xlabel("d (input dimension)")
        ax.set_title(f"{_TITLES[q]}: theorems {predicted:+.1f}", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(labelsize=7)
        label_log_axes(ax, d_all)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle(
        "Architectures against input dimension at He initialisation (95% error bars; fitted slope at each line's end)",
        fontsize=11,
    )
    return fig


def _slope_cell(a, q: str) -> str:
    fit, claim = a.fit(q), a.claim(q)
    return f"{signed(fit.slope)} {interval_text(fit.interval)} **{claim.verdict.value}**"


def render_compare(result: CompareResult, run: RunInfo) -> Rendered:
    cfg = result.config
    archs = result.archs
    dims = ", ".join(str(n) for n in cfg.dims)
    rows = [
        [
            a.label,
            _slope_cell(a, "vuln_linf"),
            _slope_cell(a, "vuln_l2"),
            f"{signed(a.fit('logit_grad_l2').slope)} {interval_text(a.fit('logit_grad_l2').interval)}",
            signed(a.eq13_slope) if a.eq13_slope is not None else "n/a",
            signed(0.5 + a.eq13_slope) if a.eq13_slope is not None else "n/a",
            consistent_with_sqrt_d(a),
            hypotheses_cell(a.scaling.hypotheses.broken) if a.scaling.hypotheses.exact else "unknown (no exact side)",
        ]
        for a in archs
    ]
    hyp_rows = []
    for a in archs:
        h = a.scaling.hypotheses
        last = a.scaling.status[-1]
        hyp_rows.append(
            [
                a.label,
                symmetry_cell(last.symmetric, last.symmetry_method, last.false_positive_bound) if h.exact else "n/a",
                ("holds" if h.bounded else "fails") if h.exact else "n/a",
                format_number(h.h3_fraction) if h.exact else "n/a",
                hypotheses_cell(h.structural),
                "yes" if h.exact else "no: " + "; ".join(h.obstacles[:3]),
            ]
        )
    option_rows = [
        [
            a.label,
            ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in a.options.items())
            or "defaults",
            len(a.scaling.config.specs[0].layers),
        ]
        for a in archs
    ]
    lines = [
        "# Architectures side by side: vulnerability against input dimension",
        "",
        (
            "The scaling check (Theorems 4, 5, Corollary 6) on each architecture at He initialisation, over the same "
            "sizes and weight draws: the fitted slope of log E[Q] against log d with its 95% interval and verdict "
            "against the predicted sqrt(d) growth of the vulnerabilities, the slope Eq. 13 gives under (H) where it "
            "has a value, and the hypotheses each architecture breaks."
        ),
        "",
        "## Settings",
        "",
        *run_header(run),
        (
            f"- sizes: image sides {dims} (d = 3 n^2); {cfg.draws} He weight draws per size and architecture, "
            f"{cfg.batch} standard normal inputs per draw"
        ),
        (
            f"- budget: eps_inf = {cfg.eps_inf:g}, eps_p = eps_inf d^(1/p); fit: least squares on log-means, 95% BCa "
            f"bootstrap over draws ({cfg.n_boot} resamples), margin +-{cfg.margin:g}"
        ),
        (
            "- the default options are narrower than the families' own (16 channels, a ResNet of width 8 with one "
            "block per stage, a ViT with 8x8 patches and width 32) so that the whole comparison runs in a few "
            "minutes on 2 CPU cores; no predicted slope depends on the width"
        ),
        "",
        table(["architecture", "options", "layers"], option_rows).rstrip("\n"),
        "",
        "## Slopes against d",
        "",
        table(
            [
                "architecture",
                "vuln_linf slope [95% CI] verdict",
                "vuln_l2 slope [95% CI] verdict",
                "E||d_x f||_2 slope [95% CI]",
                "Eq. 13 (H) slope of ||d_x f||_2",
                "vuln_l2 slope Eq. 13 implies",
                "consistent with sqrt(d)",
                "hypotheses broken",
            ],
            rows,
        ).rstrip("\n"),
        "",
        (
            "Predicted: +0.5 for both vulnerabilities, 0 for E||d_x f||_2 (Theorem 5; Theorems 4/5 with (S) or "
            "Corollary 6's (S-bounded) for vuln_linf). 'consistent with sqrt(d)': yes when both vulnerability verdicts "
            "are consistent, no when one is inconsistent. 'vuln_l2 slope Eq. 13 implies' is 1/2 plus the slope of "
            "sqrt(E||d_x f||^2) under (H) with the initialisation's variances (exact, no Monte Carlo): where it is not "
            "+0.5, the exact side already says why the net departs from sqrt(d)."
        ),
        "",
        VERDICT_RULE.format(margin=cfg.margin),
        "",
        "## Hypotheses of each architecture (at the largest size)",
        "",
        table(
            ["architecture", "(S)", "(S-bounded)", "H3 violation fraction", "broken by construction", "exact side"],
            hyp_rows,
        ).rstrip("\n"),
        "",
        HYPOTHESES_LEGEND,
        "",
        "## What explains each result",
        "",
        *[f"- **{a.label}** ({consistent_with_sqrt_d(a)}): {explanation(a)}" for a in archs],
        "",
        "## Per-size means (standard error over weight draws)",
        "",
    ]
    mean_rows = []
    for a in archs:
        for i, spec in enumerate(a.scaling.config.specs):
            mean_rows.append(
                [
                    a.label,
                    spec.dim,
                    spec.d,
                    *[
                        f"{format_number(a.fit(q).means[i])} ± {format_number(a.fit(q).stderr[i], 2)}"
                        for q in QUANTITIES
                    ],
                    format_number(float(a.eq13[i])) if a.eq13 is not None else "n/a",
                ]
            )
    lines += [
        table(["architecture", "dim", "d", *QUANTITIES, "Eq. 13 E||d_x f||^2"], mean_rows).rstrip("\n"),
        "",
        "## Plot",
        "",
        "![every architecture on shared log axes](compare.png)",
        "",
        (
            "Means with 95% error bars, each architecture's fitted power law (its slope written at the line's end), "
            "and the theorems' slope (dotted) through the geometric mean of the smallest size's means."
        ),
        "",
    ]
    payload = {
        "dims": list(cfg.dims),
        "draws": cfg.draws,
        "batch": cfg.batch,
        "seed": cfg.seed,
        "margin": cfg.margin,
        "archs": [
            {
                "label": a.label,
                "family": a.family,
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in a.options.items()},
                "d": [s.d for s in a.scaling.config.specs],
                "consistent_with_sqrt_d": consistent_with_sqrt_d(a),
                "quantities": {
                    q: {
                        "slope": a.fit(q).slope,
                        "ci_low": a.fit(q).ci_low,
                        "ci_high": a.fit(q).ci_high,
                        "verdict": a.claim(q).verdict.value,
                        "means": list(a.fit(q).means),
                        "stderr": list(a.fit(q).stderr),
                    }
                    for q in QUANTITIES
                },
                "eq13": None if a.eq13 is None else [float(v) for v in a.eq13],
                "eq13_slope": a.eq13_slope,
                "eq13_obstacles": list(a.eq13_obstacles),
                "exact_side": a.scaling.hypotheses.exact,
                "hypotheses_broken": list(a.scaling.hypotheses.broken),
                "hypothesis_notes": a.notes,
                "explanation": explanation(a),
            }
            for a in archs
        ],
        "report": "compare.md",
        "figure": "compare.png",
    }
    summary_rows = [
        [a.label, signed(a.fit("vuln_linf").slope), signed(a.fit("vuln_l2").slope), consistent_with_sqrt_d(a)]
        for a in archs
    ]
    summary = table(["architecture", "vuln_linf slope", "vuln_l2 slope", "consistent with sqrt(d)"], summary_rows)
    return Rendered(
        stem="compare",
        markdown="\n".join(lines),
        figures={"compare.png": compare_figure(result)},
        json=envelope("compare", run, result.claims, payload),
        summary=summary,
    )
