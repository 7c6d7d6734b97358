"""The scaling report (Theorems 4, 5, Corollary 6), rendered from a ``ScalingResult``."""

from __future__ import annotations

import numpy as np

from verify.checks.scaling import ScalingResult
from verify.report import Rendered
from verify.report.common import HYPOTHESES_LEGEND, VERDICT_RULE, hypotheses_cell, settle_line, symmetry_cell
from verify.report.markdown import format_number, interval_text, signed, table
from verify.report.writer import envelope, run_header
from verify.results import RunInfo, Verdict
from verify.stats import band_verdict

__all__ = ["asymptotic_lines", "exact_section", "hypothesis_lines", "render_scaling", "scaling_figure"]

SQUARED_NAME = "logit_grad_l2_sq"


def _exact_slope_cell(q) -> str:
    if q.exact is None:
        return "-"
    text = signed(q.exact.slope)
    return text if q.prediction.quantity == SQUARED_NAME else f"{text} (root mean square)"


def _exact_payload(q) -> dict | None:
    e = q.exact
    if e is None:
        return None
    return {
        "label": e.label,
        "values": list(e.values),
        "he": list(e.he),
        "slope": e.slope,
        "asymptotic_slope": e.asymptotic_slope,
    }


def _asymptotic_payload(q) -> dict | None:
    a, c = q.asymptotic, q.asymptotic_claim
    if a is None or c is None:
        return None
    return {
        "slope": a.slope,
        "ci_low": a.ci_low,
        "ci_high": a.ci_high,
        "verdict": c.verdict.value,
        "intercept": a.intercept,
        "amplitude": a.amplitude,
        "exponent": a.exponent,
        "residuals": list(a.residuals),
    }


def _stride_product(spec) -> int:
    """Product of the strides and pooling windows of an image net's trunk (1 for vector nets)."""
    out = 1
    for layer in spec.layers:
        out *= int(getattr(layer, "stride", 1)) * int(getattr(layer, "window", 1))
    return out


def asymptotic_lines(result: ScalingResult) -> list[str]:
    """What the asymptotic columns are, or why they are empty."""
    exponent, why = result.finite_size
    if result.asymptotic_note:
        return [
            (
                f"Asymptotic exponent: not fitted, {result.asymptotic_note}. Each size adds one mean; the fit "
                "log E[Q] = beta log d + alpha + c d^e has three coefficients, and at least two degrees of freedom are left "
                f"to see whether one correction term describes the data ({why})."
            )
        ]
    lines = []
    s0 = result.config.specs[0]
    jump = _stride_product(s0)
    odd = [s.dim for s in result.config.specs if s0.padding in ("zeros", "reflect") and s.dim % jump]
    if odd:
        lines.append(
            f"**Sizes {odd} are not multiples of {jump} (the product of the strides):** some feature maps have odd "
            "sides there, and the border's share of their neurons jumps from one size to the next instead of falling "
            "smoothly like d^(-1/2), so one correction term does not describe them (look at the residuals in the "
            f"JSON); prefer multiples of {jump}."
        )
    return [
        *lines,
        (
            f"Asymptotic exponent: each quantity is also fitted as log E[Q] = beta log d + alpha + c d^({exponent:g}) "
            f"({why}); beta is the exponent once the leading finite-size term is removed, with the same paired "
            "bootstrap over weight draws and the same band. The fit is linear in (beta, alpha, c), so its interval is "
            "wider than the plain slope's: the correction term trades precision for less bias. Where the exact (H) "
            "curve exists, the same fit of it (noise-free) is in the notes: the beta the hypotheses imply over these "
            "sizes."
        ),
    ]


def _moments_sentence(result: ScalingResult) -> str:
    c = result.moments_claim
    mean = result.moments_mean
    assert c is not None
    assert mean is not None
    return (
        f"Monte Carlo E||d_x f_c||_2^2 against Eq. 13 with the init's variances, averaged over the sizes: "
        f"MC/exact - 1 = {signed(mean.estimate)} {interval_text(mean.interval)}, **{c.verdict.value}** "
        f"(band +-{2 * result.config.margin:g})."
    )


def exact_section(result: ScalingResult) -> list[str]:
    """The exact (H) curve against Monte Carlo, size by size (empty without ``logit_grad_l2``)."""
    if not result.moments:
        return []
    tol = 2 * result.config.margin
    rows = []
    for st, m in zip(result.status, result.moments):
        rows.append(
            [
                st.dim,
                st.d,
                f"{format_number(m.mc_sq)} {interval_text(m.mc_sq_interval, digits=4)}",
                m.init,
                m.he,
                f"{signed(m.rel_init)} {interval_text(m.rel_init_interval)}",
                f"**{band_verdict(m.rel_init_interval, 0.0, tol).value}**",
                f"{signed(m.rel_he)} {interval_text(m.rel_he_interval)}",
                m.culprit,
            ]
        )
    sq = result.quantity(SQUARED_NAME)
    exact = sq.exact
    lines = [
        "## Exact (H) curve against Monte Carlo",
        "",
        (
            "E||d_x f_c||_2^2 is the one measured quantity whose value the hypotheses fix at every size: Eq. 13 sums "
            "the path products' second moments, computed exactly for the whole net by the operator form "
            "(`graphs.moments`), both with E[w^2] = 2/in-degree (the ideal H3, 'he') and with the variances the "
            "initialisation really draws (2/nominal fan-in, 'init', which includes the zero-padded border). The "
            "Monte Carlo mean is over weight draws (its inputs averaged first), with a BCa interval; a size agrees "
            f"when the interval of MC/init - 1 lies within +-{tol:g}. Where it does not, the last column names the "
            "hypothesis the gap points to, as in the pooling report."
        ),
        "",
        table(
            [
                "dim",
                "d",
                "Monte Carlo (95% CI)",
                "Eq. 13, init",
                "Eq. 13, he",
                "MC/init - 1 (95% CI)",
                "agreement",
                "MC/he - 1 (95% CI)",
                "likely cause",
            ],
            rows,
        ).rstrip("\n"),
        "",
        _moments_sentence(result),
        "",
    ]
    if exact is not None:
        text = (
            f"Over the requested sizes the exact (H) curve has slope {signed(exact.slope)} against log d, the Monte "
            f"Carlo {signed(sq.fit.slope)} {interval_text(sq.fit.interval)}"
        )
        if exact.asymptotic_slope is not None and sq.asymptotic is not None:
            text += (
                f"; the finite-size fit gives beta = {signed(exact.asymptotic_slope)} for the exact curve (the "
                f"hypotheses' own answer for this net over these sizes; 0 as d grows, since Eq. 13 tends to its "
                f"border-free value) and {signed(sq.asymptotic.slope)} {interval_text(sq.asymptotic.interval)} "
                "for the Monte Carlo"
            )
        lines += [text + ".", ""]
    lines += [
        (
            "Other second moments: none of the other quantities has an exact (H) value. The loss gradient "
            "d_x L = sum_k (q_k - 1[k = c]) d_x f_k weighs the logit gradients by the softmax q, a function of the "
            "logits; for these bias-free ReLU nets f_k(x) = <d_x f_k(x), x> exactly (positive homogeneity), so q and "
            "the gradients are dependent and Eq. 13 does not extend to E||d_x L||_2^2 (Remark 1 gives it only "
            "conditionally on q, for uncorrelated logit gradients: `verify first-order` tests that). The l_1, l_inf "
            "and unsquared l_2 norms are not second moments."
        ),
        "",
    ]
    return lines


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
        exact = None
        if q.exact is not None:
            root = "" if q.prediction.quantity == SQUARED_NAME else "sqrt of "
            exact = (q.fit.xs, q.exact.values, f"{root}exact (H) {q.exact.slope:+.3f}")
        verdict = q.claim.verdict.value
        if q.asymptotic_claim is not None:
            verdict += f"; asymptotic: {q.asymptotic_claim.verdict.value}"
        loglog_panel(ax, q.fit, predicted=q.prediction.slope, verdict=verdict, exact=exact, xlabel="d")
        if q.asymptotic is not None:
            grid = np.geomspace(q.fit.xs.min(), q.fit.xs.max(), 50)
            ax.plot(grid, q.asymptotic.predict(grid), "-.", color="C1", lw=1.2, zorder=2)
            ax.plot([], [], "-.", color="C1", lw=1.2, label=f"finite-size fit, beta {q.asymptotic.slope:+.3f}")
            ax.legend(fontsize=7, loc="best")
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
        a, ac = q.asymptotic, q.asymptotic_claim
        rows.append(
            [
                q.prediction.quantity,
                signed(q.prediction.slope, 1),
                signed(q.fit.slope),
                interval_text(q.fit.interval),
                f"**{c.verdict.value}**",
                _exact_slope_cell(q),
                signed(a.slope) if a is not None else "-",
                interval_text(a.interval) if a is not None else "-",
                f"**{ac.verdict.value}**" if ac is not None else "-",
                hypotheses_cell(c.hypotheses_needed),
                hypotheses_cell(c.hypotheses_broken),
                c.note or "-",
            ]
        )
    lines += [
        table(
            [
                "quantity",
                "predicted slope",
                "fitted slope",
                "95% CI",
                "verdict",
                "exact (H) slope",
                "asymptotic beta",
                "95% CI (beta)",
                "asymptotic verdict",
                "needs",
                "broken here",
                "notes",
            ],
            rows,
        ).rstrip("\n"),
        "",
        VERDICT_RULE.format(margin=cfg.margin)
        + f" `{SQUARED_NAME}` is a squared norm: its slopes are twice the norm's, and so is its band (+-{2 * cfg.margin:g}).",
        "",
        *asymptotic_lines(result),
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
    lines += exact_section(result)
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
        (
            "Means with 95% error bars, the fitted power law (solid), the predicted slope drawn through the data's centre "
            "(dotted), the exact (H) curve where the quantity has one (dashed: Eq. 13 with the variances the "
            "initialisation draws; for `logit_grad_l2` its square root, an upper bound by Jensen's inequality) and, with "
            "enough sizes, the finite-size fit (dash-dotted)."
        ),
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
                "exact_logit_grad_sq_he": s.he_sq,
                "exact_logit_grad_sq_init": s.init_sq,
            }
            for s in result.status
        ],
        "second_moments": [m.as_dict() for m in result.moments],
        "second_moments_mean": result.moments_mean.as_dict() if result.moments_mean is not None else None,
        "finite_size": {"exponent": result.finite_size[0], "reason": result.finite_size[1]},
        "asymptotic_note": result.asymptotic_note or None,
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
                "exact": _exact_payload(q),
                "asymptotic": _asymptotic_payload(q),
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
            _exact_slope_cell(q),
            f"{signed(q.asymptotic.slope)} {q.asymptotic_claim.verdict.value}"
            if q.asymptotic is not None and q.asymptotic_claim is not None
            else "-",
            hypotheses_cell(q.claim.hypotheses_broken),
        ]
        for q in result.quantities
    ]
    summary = table(
        ["quantity", "predicted", "fitted", "95% CI", "verdict", "exact (H)", "asymptotic", "broken here"],
        summary_rows,
    ) + "\n".join(hypothesis_lines(result))
    if result.moments_claim is not None:
        summary += "\n" + _moments_sentence(result)
    if result.asymptotic_note:
        summary += "\nNo asymptotic fit: " + result.asymptotic_note + "."
    counts = {v: sum(1 for c in result.claims if c.verdict is v) for v in Verdict}
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
