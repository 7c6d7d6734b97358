"""The scaling report (Theorems 4, 5, Corollary 6), rendered from a ``ScalingResult``."""

from __future__ import annotations

from verify.checks.scaling import ScalingResult
from verify.report import Rendered
from verify.report.common import HYPOTHESES_LEGEND, VERDICT_RULE, hypotheses_cell, settle_line, symmetry_cell
from verify.report.markdown import format_number, interval_text, signed, table
from verify.report.writer import envelope, run_header
from verify.results import RunInfo, Verdict

__all__ = ["hypothesis_lines", "render_scaling", "scaling_figure"]


def hypothesis_lines(result: ScalingResult) -> list[str]:
    """Plain statements about the hypotheses of the sampled nets, for the verdicts' side."""
    hyp = result.hypotheses
    status = result.status
    lines = []
    if not hyp.exact:
        from graphs.spec import obstacles_text

        lines.append(
            "No exact side for this net, so (S), (S-bounded) and H3 are unchecked and the verdicts rest on the Monte "
            f"Carlo alone. What keeps it from one: {obstacles_text(hyp.obstacles, 10)}."
        )
        lines += _structural_lines(hyp.structural)
        return lines
    s_fail = [s.dim for s in status if not s.symmetric]
    if not s_fail:
        lines.append("(S) holds at every size.")
    elif hyp.bounded:
        last = status[-1]
        lines.append(
            f"(S) FAILS at sizes {s_fail}, but d*P(x,o) stays within [{last.dp_min:.4g}, {last.dp_max:.4g}] from one size to "
            "the next (the two largest agree within 5%): the weaker condition (S-bounded) that Corollary 6's slopes need "
            "holds over the sizes checked."
        )
    else:
        lines.append(
            f"(S) FAILS at sizes {s_fail} and the range of d*P(x,o) still moves between the two largest sizes: the "
            "theorems do not imply the slopes of the quantities that need (S)."
        )
    h3_fail = [s.dim for s in status if s.h3_fraction > 0]
    if h3_fail:
        lines.append(
            f"H3 FAILS at sizes {h3_fail} (up to {hyp.h3_fraction:.2%} of the random-weight neurons have an in-degree other "
            "than the fan-in He initialisation uses): no verdict here is implied by the theorems."
        )
    else:
        lines.append("H3 holds at every size.")
    lines += _structural_lines(hyp.structural)
    return lines


def _structural_lines(structural: tuple[str, ...]) -> list[str]:
    lines = []
    if "H5" in structural:
        lines.append(
            "H5 FAILS by construction: reflect padding makes one convolution weight connect a border pixel to two "
            "neurons, two perfectly correlated weights from one node."
        )
    lines.extend(
        f"{h} FAILS by construction in some layer kinds of this net (max pooling, batch statistics, an "
        "activation after a residual addition, an activation other than ReLU: see each kind's note)."
        for h in ("H1", "H4")
        if h in structural
    )
    return lines


def _settle(result: ScalingResult) -> int:
    """The draws per size that would likely settle every inconclusive verdict (0: none)."""
    return max((q.draws_to_settle or 0 for q in result.quantities), default=0)


def scaling_figure(result: ScalingResult):
    """One log-log panel per quantity: means, fit, predicted slope, verdict."""
    from verify.report.figures import loglog_grid, loglog_panel

    fig, axes = loglog_grid(len(result.quantities))
    for ax, q in zip(axes, result.quantities):
        loglog_panel(ax, q.fit, predicted=q.prediction.slope, verdict=q.claim.verdict.value, xlabel="d")
    s0 = result.config.specs[0]
    title = s0.family + (f", padding {s0.padding}" if s0.padding else "") + ": E[Q] against d (95% error bars)"
    fig.suptitle(title, fontsize=11)
    return fig


def render_scaling(result: ScalingResult, run: RunInfo) -> Rendered:
    cfg = result.config
    specs = cfg.specs
    s0 = specs[0]
    stem = f"scaling-{s0.family}"
    png = f"{stem}.png"
    opts = ", ".join(f"{k}={v}" for k, v in s0.family_options().items())
    hyp = result.hypotheses
    lines = [
        f"# Scaling with input dimension: {s0.family}",
        "",
        (
            "Theorems 4 and 5 and Corollary 6 of Simon-Gabriel et al. (2019) at He initialisation: the slope of "
            "log E[Q] against log d for each quantity Q, fitted on Monte Carlo samples, compared with the slope the "
            "theorems predict."
        ),
        "",
        "## Settings",
        "",
        *run_header(run),
        f"- family: `{s0.family}` ({opts or 'default options'}), {s0.num_classes} classes",
        f"- sizes: dims {', '.join(str(s.dim) for s in specs)}; d = {', '.join(str(s.d) for s in specs)}",
        (
            f"- draws: {cfg.draws} He weight draws per size, {cfg.batch} {cfg.inputs} inputs per draw "
            "(draw i uses the streams (seed, i))"
        ),
        f"- vulnerability budget: eps_inf = {cfg.eps_inf:g}, eps_p = eps_inf d^(1/p)",
        *([f"- precision: {result.precision.describe()}"] if result.precision is not None else []),
        (
            f"- fit: least squares on log-means, 95% BCa bootstrap over weight draws ({cfg.n_boot} resamples; draw i of every "
            f"size comes from (seed, i), so draws are resampled by id jointly across sizes), margin +-{cfg.margin:g}"
        ),
        "",
        "## Hypotheses of the sampled nets",
        "",
        (
            "Exact side, from `graphs/`: (S) by the path-degree polynomials (exact DAG for small nets, a randomised identity "
            "test otherwise, whose 'fails' is a certificate), H3 as the fraction of random-weight neurons whose in-degree "
            "differs from the fan-in the initialisation uses, and the range of d * P(x, o) over inputs and logits (1 "
            "everywhere under (S), Lemma 8)."
        ),
        "",
        table(
            ["dim", "d", "(S)", "H3 violation fraction", "min d*P(x,o)", "max d*P(x,o)", "broken by construction"],
            [
                [
                    s.dim,
                    s.d,
                    symmetry_cell(s.symmetric, s.symmetry_method, s.false_positive_bound)
                    if s.exact
                    else "n/a (no exact side)",
                    s.h3_fraction if s.exact else "n/a",
                    s.dp_min if s.exact else "n/a",
                    s.dp_max if s.exact else "n/a",
                    hypotheses_cell(s.structural),
                ]
                for s in result.status
            ],
        ).rstrip("\n"),
        "",
        *[f"**{line}**" if "FAILS" in line else line for line in hypothesis_lines(result)],
        "",
        "## Verdicts",
        "",
    ]
    if hyp.broken:
        lines += [
            (
                f"**Warning: {', '.join(hyp.broken)} {'fail' if len(hyp.broken) > 1 else 'fails'} for this net (see above).** "
                "The verdicts say whether the measured slopes match the predicted ones; where a hypothesis a statement needs "
                "is broken (last columns), an 'inconsistent' verdict is not a counter-example to the theorem and a "
                "'consistent' one does not confirm it."
            ),
            "",
        ]
    rows = []
    for q in result.quantities:
        c = q.claim
        rows.append(
            [
                q.prediction.quantity,
                signed(q.prediction.slope, 1),
                signed(q.fit.slope),
                interval_text(q.fit.interval),
                f"**{c.verdict.value}**",
                hypotheses_cell(c.hypotheses_needed),
                hypotheses_cell(c.hypotheses_broken),
                c.note or "-",
            ]
        )
    lines += [
        table(
            ["quantity", "predicted slope", "fitted slope", "95% CI", "verdict", "needs", "broken here", "notes"], rows
        ).rstrip("\n"),
        "",
        VERDICT_RULE.format(margin=cfg.margin),
        "",
        *([settle_line(run.command, _settle(result)), ""] if _settle(result) else []),
        HYPOTHESES_LEGEND,
        "",
        (
            "`loss_grad_linf`: Theorems 4/5 give E||g||_inf ~ d^(-1/2) only up to the growth of the largest of d coordinates. "
            "Under (S) the coordinates share one scale, so E||g||_inf is d^(-1/2) times the expected maximum of d absolute "
            "standard normals (computed exactly by quadrature); the fit divides by that factor and compares with -1/2. "
            "Dividing by sqrt(ln d), as earlier versions did, left a systematic residual."
        ),
        "",
        "Predictions: "
        + "; ".join(f"`{q.prediction.quantity}`: {q.prediction.source}" for q in result.quantities)
        + ".",
        "",
    ]
    if len(specs) > 1:
        slopes = [q.fit.local_slopes() for q in result.quantities]
        local_rows = [
            [f"{specs[i - 1].dim} -> {specs[i].dim}", *[signed(float(s[i - 1])) for s in slopes]]
            for i in range(1, len(specs))
        ]
        lines += [
            (
                "Local slopes between consecutive sizes (point estimates, same correction as the fit): where a hypothesis fails "
                "only near the boundary, they drift towards the prediction as d grows and the boundary's share shrinks."
            ),
            "",
            table(["sizes", *[q.prediction.quantity for q in result.quantities]], local_rows).rstrip("\n"),
            "",
        ]
    if s0.padding == "zeros" and hyp.exact and hyp.h3_fraction > 0:
        lines += [
            (
                "With zero padding, neurons at the image border have fewer inputs than the fan-in He initialisation assumes "
                "(H3 fails there), which damps the gradient most at small sizes, where the border holds a larger share of the "
                "neurons. To separate this effect, rerun with `--padding circular` (H3 then holds; (S) still fails for 3x3 "
                "stride-2 convolutions, but d*P(x,o) stays bounded)."
            ),
            "",
        ]
    mean_rows = []
    for i, spec in enumerate(specs):
        mean_rows.append(
            [
                spec.dim,
                spec.d,
                *[f"{format_number(q.fit.means[i])} ± {format_number(q.fit.stderr[i], 2)}" for q in result.quantities],
            ]
        )
    lines += [
        "## Per-size means (standard error over weight draws)",
        "",
        table(["dim", "d", *[q.prediction.quantity for q in result.quantities]], mean_rows).rstrip("\n"),
        "",
        f"Each mean is over {cfg.draws} draws x {cfg.batch} inputs; the standard error is that of the per-draw means.",
        "",
        "## Plot",
        "",
        f"![log-log plot of E[Q] against d]({png})",
        "",
        "Means with 95% error bars, the fitted power law (solid) and the predicted slope drawn through the data's centre (dotted).",
        "",
    ]
    payload = {
        "arch": s0.family,
        "padding": s0.padding,
        "dims": [s.dim for s in specs],
        "d": [s.d for s in specs],
        "seed": cfg.seed,
        "samples": cfg.draws,
        "draws": cfg.draws,
        "batch": cfg.batch,
        "inputs": cfg.inputs,
        "eps_inf": cfg.eps_inf,
        "margin": cfg.margin,
        "n_boot": cfg.n_boot,
        "options": cfg.settings()["options"],
        "symmetric": hyp.symmetric,
        "symmetry_bounded": hyp.bounded,
        "h3_violation_fraction": hyp.h3_fraction,
        "hypotheses_broken": list(hyp.broken),
        "exact_side": hyp.exact,
        "exact_obstacles": list(hyp.obstacles),
        "precision": None
        if result.precision is None
        else {
            "precision": result.precision.precision,
            "dim": result.precision.dim,
            "draw": result.precision.draw,
            "max_relative_error": result.precision.max_relative,
            "by_quantity": result.precision.by_quantity,
        },
        "sizes": [
            {
                "dim": s.dim,
                "d": s.d,
                "symmetric": s.symmetric,
                "symmetry_method": s.symmetry_method,
                "h3_violation_fraction": s.h3_fraction,
                "path_sum_times_d_min": s.dp_min,
                "path_sum_times_d_max": s.dp_max,
            }
            for s in result.status
        ],
        "quantities": [
            {
                "name": q.prediction.quantity,
                "predicted_slope": q.prediction.slope,
                "slope": q.fit.slope,
                "ci_low": q.fit.ci_low,
                "ci_high": q.fit.ci_high,
                "verdict": q.claim.verdict.value,
                "raw_slope": q.fit.raw_slope,
                "correction": q.fit.correction,
                "means": list(q.fit.means),
                "stderr": list(q.fit.stderr),
                "local_slopes": list(q.fit.local_slopes()),
                "draws_to_settle": q.draws_to_settle,
            }
            for q in result.quantities
        ],
        "report": f"{stem}.md",
        "figure": png,
    }
    summary_rows = [
        [
            q.prediction.quantity,
            signed(q.prediction.slope, 1),
            signed(q.fit.slope),
            interval_text(q.fit.interval),
            q.claim.verdict.value,
            hypotheses_cell(q.claim.hypotheses_broken),
        ]
        for q in result.quantities
    ]
    summary = table(["quantity", "predicted", "fitted", "95% CI", "verdict", "broken here"], summary_rows) + "\n".join(
        hypothesis_lines(result)
    )
    counts = {v: sum(1 for q in result.quantities if q.claim.verdict is v) for v in Verdict}
    summary += "\n" + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
    if _settle(result):
        summary += "\n" + settle_line(run.command, _settle(result))
    return Rendered(
        stem=stem,
        markdown="\n".join(lines),
        figures={png: scaling_figure(result)},
        json=envelope("scaling", run, result.claims, payload),
        summary=summary,
    )
