"""The paths report (Lemmas 7 and 8, (S), (S-bounded), H3), rendered from a ``PathsResult``."""

from __future__ import annotations

import math

from verify.checks.paths import FLOAT_RTOL, PathRow, PathsResult
from verify.report import Rendered
from verify.report.common import HYPOTHESES_LEGEND, claims_table_rows, hypotheses_cell, symmetry_cell
from verify.report.markdown import format_number, table
from verify.report.writer import envelope, run_header
from verify.results import RunInfo, Verdict

__all__ = ["centred_ticks", "paths_heatmap", "render_paths", "size_table"]


def centred_ticks(lo: float, hi: float, *, per_side: int = 3) -> list[float]:
    """Colour-bar ticks of a scale centred at 1: both ends, 1, and up to ``per_side`` round
    values between each end and 1, none so close to an end that their labels collide."""
    from matplotlib.ticker import MaxNLocator

    ticks = {1.0}
    for a, b in ((lo, 1.0), (1.0, hi)):
        if b - a <= 1e-9:
            continue
        ticks.update((a, b))
        gap = 0.15 * (b - a)
        locator = MaxNLocator(nbins=per_side + 1, steps=[1, 2, 2.5, 5, 10])
        ticks.update(float(t) for t in locator.tick_values(a, b) if a + gap < t < b - gap)
    return sorted(ticks)


def paths_heatmap(result: PathsResult):
    """d * P(x, o_0) over the input image, one panel per size (one per channel if they differ)
    with its own colour bar centred at 1 (white); None for vector inputs."""
    from matplotlib.colors import TwoSlopeNorm

    from verify.report.figures import new_figure

    rows, specs = result.rows, result.config.specs
    if len(specs[0].input_shape) != 3:
        return None
    n_channels = specs[0].input_shape[0]
    one = all(r.channels_identical for r in rows)
    if one:
        ncols = min(2, len(rows))
        nrows = math.ceil(len(rows) / ncols)
        fig, axes = new_figure(nrows, ncols, figsize=(5.0 * ncols, 4.3 * nrows))
        flat = list(axes.flat)
        for ax in flat[len(rows) :]:
            ax.set_visible(False)
        panels, channels = [[ax] for ax in flat], [0]
    else:
        fig, axes = new_figure(len(rows), n_channels, figsize=(3.3 * n_channels + 1.4, 3.2 * len(rows)))
        panels, channels = [list(a) for a in axes], list(range(n_channels))
    for row, axs in zip(rows, panels):
        img = row.scaled_first_logit
        lo, hi = float(img.min()), float(img.max())
        # White is Lemma 8's value 1; each half of the bar is linear, so colours show where
        # and how far (S) fails on either side even when the spread is lopsided.
        norm = TwoSlopeNorm(vmin=min(lo, 1 - 1e-9), vcenter=1.0, vmax=max(hi, 1 + 1e-9))
        for ax, c in zip(axs, channels):
            im = ax.imshow(img[c], cmap="RdBu_r", norm=norm, interpolation="nearest")
            flat = " (1 everywhere)" if hi - lo <= 1e-9 else ""
            ax.set_title(f"n = {row.dim}, d = {row.d}" + ("" if one else f", channel {c}") + flat, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        ticks = centred_ticks(lo, hi)
        bar = fig.colorbar(im, ax=axs, shrink=0.9, pad=0.02)
        bar.set_ticks(ticks)
        bar.set_ticklabels([_tick_label(t, lo, hi) for t in ticks])
        bar.ax.tick_params(labelsize=8)
        bar.set_label("d·P(x, o)", fontsize=9)
        bar.ax.yaxis.set_label_position("left")
    s0 = specs[0]
    where = f"input channel 0 (the {n_channels} channels are identical)" if one else "every input channel"
    title = s0.family + (f", padding {s0.padding}" if s0.padding else "") + f": d·P(x, o) for logit o = 0, {where}"
    fig.suptitle(title, fontsize=11)
    return fig


def _tick_label(t: float, lo: float, hi: float) -> str:
    if t == lo and t < 1:
        return f"{t:.3g} (min)"
    if t == hi and t > 1:
        return f"{t:.3g} (max)"
    return f"{t:.3g}"


def _total_cell(row: PathRow, exact_totals: bool) -> str:
    if exact_totals and row.lemma7_exact is not None:
        return f"{row.lemma7_exact} (exact)"
    # 16 digits: the float64 rounding (~1e-15) is part of what the column shows.
    return format_number(row.lemma7_total, 16)


def size_table(result: PathsResult, *, exact_totals: bool = True) -> str:
    """The per-size table (``exact_totals``: Fractions as such, for the report)."""
    return table(
        [
            "dim",
            "d",
            "Lemma 7 total",
            "min d*P(x,o)",
            "max d*P(x,o)",
            "(S)",
            "H3 violation fraction",
            "broken by construction",
        ],
        [
            [
                r.dim,
                r.d,
                _total_cell(r, exact_totals),
                r.dp_min,
                r.dp_max,
                symmetry_cell(r.symmetric, r.symmetry_method, r.false_positive_bound),
                r.h3_fraction,
                hypotheses_cell(r.structural),
            ]
            for r in result.rows
        ],
    )


READING = [
    (
        "- `P(x, o)` is the sum over all paths from input x to logit o of the product of `1/d_p` over the path without "
        "its input node (`d_p` the in-degree, parallel edges counted)."
    ),
    (
        "- **Lemma 7 total** is `sum_x P(x, o)`, shown for the logit where it is farthest from 1. It is exactly 1 on every "
        f"DAG; in float64 it may differ from 1 by rounding (~1e-15; the verdict allows {FLOAT_RTOL:g})."
    ),
    (
        "- **min/max d*P(x,o)** range over every input x and logit o. Lemma 8: under (S) both are exactly 1. A spread means "
        "some inputs carry more paths (weighted by 1/d_p) than others: inputs with `d*P > 1` get more of the gradient's "
        "variance. Its mean over x is 1 whatever the net (Lemma 7)."
    ),
    (
        "- **(S)** says whether every input has the same multiset of path-degrees to every logit: `exact` = compared "
        "path-degree polynomials on the DAG; `certified` = two inputs gave different exact residues in the randomised test "
        "(no error possible); `randomised, p_fp <= ...` = the randomised test found no difference, and the bound is the "
        "probability that (S) nevertheless fails."
    ),
    (
        "- **H3 violation fraction**: share of random-weight neurons (logits included, pooling excluded) whose in-degree "
        "differs from the nominal fan-in used by He initialisation (so their weight variance is not 2/in-degree). Zero "
        "padding makes boundary neurons violate it; circular and reflect padding do not."
    ),
    "- **broken by construction**: hypotheses a layer kind breaks whatever the sizes (reflect padding: H5).",
]

FALSE_POSITIVE = (
    "Each input's path-degree polynomial `Q_x(z) = sum_paths prod z_{d_p}` is evaluated through the operator form at a "
    "uniform random point modulo a random prime p from `(P/2, P]`, with P the largest modulus for which every "
    "intermediate stays below 2^53 (so float64 arithmetic is exact; the mod is taken after each layer). If (S) fails "
    "for some input, one trial misses it with probability at most `eps = L/(P/2) + floor(log N / log(P/2)) / #primes` "
    "(Schwartz-Zippel over F_p with L the number of layers, plus the chance that p divides every coefficient of the "
    "difference; N bounds the path counts). With t independent trials the verdict is wrong with probability at most "
    "`eps^t`; a statement about each of the d inputs separately costs the union bound `d eps^t`. The test stops at the "
    "first trial that certifies a difference."
)


def render_paths(result: PathsResult, run: RunInfo) -> Rendered:
    from graphs.symmetry import DAG_SYMMETRY_MAX_EDGES

    cfg = result.config
    specs, rows = cfg.specs, result.rows
    s0 = specs[0]
    stem = f"paths-{s0.family}"
    figure = paths_heatmap(result)
    png = f"{stem}.png" if figure is not None else None
    opts = ", ".join(f"{k}={v}" for k, v in s0.family_options().items())
    symmetry_method = (
        "exact path-degree polynomials on the DAG"
        if cfg.exact
        else f"exact path-degree polynomials on the DAG up to {DAG_SYMMETRY_MAX_EDGES} edges, else the randomised "
        f"identity test with {cfg.trials} trial(s) from seed {cfg.seed}"
    )
    lines = [
        f"# Path sums: {s0.family}" + (f", padding {s0.padding}" if s0.padding else ""),
        "",
        (
            "Lemmas 7 and 8 of Simon-Gabriel et al. (2019), checked exactly on the net's graph, with the symmetry (S), "
            "the weaker (S-bounded) that Corollary 6 needs, and H3 at every size."
        ),
        "",
        "## Settings",
        "",
        *run_header(run),
        f"- family: `{s0.family}` ({opts or 'default options'}), {s0.num_classes} classes",
        f"- sizes: dims {', '.join(str(s.dim) for s in specs)}; d = {', '.join(str(s.d) for s in specs)}",
        f"- path sums: {cfg.method}",
        f"- (S): {symmetry_method}",
        f"- architecture at the first size: {s0.describe()}",
        "",
        "## Per size",
        "",
        size_table(result).rstrip("\n"),
        "",
        "## Verdicts",
        "",
        table(
            ["claim", "predicted", "estimate", "range", "verdict", "broken here", "notes"],
            [[*cells, c.note or "-"] for cells, c in zip(claims_table_rows(result.claims), result.claims)],
        ).rstrip("\n"),
        "",
        *[f"- **{c.name}**: {c.statement}" for c in result.claims],
        "",
        (
            "Every number here is exact or float64 arithmetic, not a sample: each 'range' is the spread of exact values "
            "(level 1), never a confidence interval."
        ),
        "",
        HYPOTHESES_LEGEND,
        "",
        "## How to read this",
        "",
        *READING,
        "",
        "## False-positive bound of the randomised (S) test",
        "",
        FALSE_POSITIVE,
        "",
    ]
    randomised = [r for r in rows if r.symmetry_method == "randomised"]
    if randomised:
        lines += [
            "Randomised tests here: "
            + "; ".join(
                f"dim {r.dim}: {r.symmetry_trials} trial(s), primes {', '.join(map(str, r.primes))}"
                + (f", bound {r.false_positive_bound:.2e}" if r.symmetric else ", failure certified")
                for r in randomised
            ),
            "",
        ]
    if png is not None:
        one = all(r.channels_identical for r in rows)
        channels = (
            f"Input channel 0 only: the {s0.input_shape[0]} input channels carry identical values (checked "
            "numerically at every size, to 1e-12 relative), because every first-layer kernel reads all channels "
            "the same way."
            if one
            else "One panel per input channel: the channels differ."
        )
        lines += [
            "## Heatmap",
            "",
            (
                f"`d * P(x, o)` for logit o = 0 over the input image, one panel per size, each with its own colour bar. "
                f"{channels} White is 1 (Lemma 8's value under (S)); red inputs carry more weighted paths, blue fewer; each "
                "colour bar is linear on either side of 1 and labels its minimum and maximum. Boundary effects of zero "
                "padding and the stride-parity pattern of strided layers show here."
            ),
            "",
            f"![d * P(x, o)]({png})",
            "",
        ]
    payload = {
        "arch": s0.family,
        "padding": s0.padding,
        "exact": cfg.exact,
        "trials": cfg.trials,
        "seed": cfg.seed,
        "symmetric": result.hypotheses.symmetric,
        "symmetry_bounded": result.hypotheses.bounded,
        "hypotheses_broken": list(result.hypotheses.broken),
        "rows": [
            {
                "dim": r.dim,
                "d": r.d,
                "lemma7_total": r.lemma7_total,
                "path_sum_times_d_min": r.dp_min,
                "path_sum_times_d_max": r.dp_max,
                "symmetric": r.symmetric,
                "h3_violation_fraction": r.h3_fraction,
                "lemma7_total_exact": None if r.lemma7_exact is None else str(r.lemma7_exact),
                "symmetry_method": r.symmetry_method,
                "symmetry_trials": r.symmetry_trials,
                "symmetry_primes": list(r.primes),
                "false_positive_bound": r.false_positive_bound,
                "symmetry_witness": None if r.witness is None else list(r.witness),
                "hypotheses_broken_by_construction": list(r.structural),
            }
            for r in rows
        ],
        "report": f"{stem}.md",
        "figure": png,
    }
    counts = {v: sum(1 for c in result.claims if c.verdict is v) for v in Verdict}
    summary = (
        size_table(result, exact_totals=False)
        + "\n".join(f"{c.name}: {c.verdict.value}" + (f" ({c.note})" if c.note else "") for c in result.claims)
        + "\n"
        + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
    )
    return Rendered(
        stem=stem,
        markdown="\n".join(lines),
        figures={png: figure} if png is not None else {},
        json=envelope("paths", run, result.claims, payload),
        summary=summary,
    )
