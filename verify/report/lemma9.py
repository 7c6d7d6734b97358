"""The Lemma 9 report (with the exact and Monte Carlo second moments of Eq. 13), from a ``Lemma9Result``."""

from __future__ import annotations

from typing import Any

from verify.checks.lemma9 import Lemma9Result, Lemma9Size
from verify.report import Rendered
from verify.report.common import HYPOTHESES_LEGEND, claims_table_rows, hypotheses_cell
from verify.report.markdown import format_number, table
from verify.report.writer import envelope, run_header
from verify.results import RunInfo, Verdict

__all__ = ["render_lemma9", "report_stem", "size_payload"]

_EXPECTATION = {True: " (as expected)", False: " (UNEXPECTED)", None: " (H5 fails: see note)"}


def report_stem(result: Lemma9Result) -> str:
    cfg = result.config
    return f"lemma9-{cfg.family}" + ("" if cfg.init == "he" else f"-{cfg.init}")


def _verdict_cell(size: Lemma9Size) -> str:
    return f"**{size.lemma9.verdict.value}**{_EXPECTATION[size.as_expected]}"


def _pct_interval(interval) -> str:
    if not interval.finite:
        return "no interval"
    return f"[{interval.low:+.1%}, {interval.high:+.1%}]"


def size_payload(size: Lemma9Size) -> dict[str, Any]:
    """One size as the ``results`` entry of the JSON (the keys of the old ``moments`` command)."""
    counts = size.counts()
    p_mean, padj_mean = size.smallest("mean")
    p_pair, padj_pair = size.smallest("pair")
    spec = size.spec
    row: dict[str, Any] = {
        "dim": spec.dim,
        "d": spec.d,
        "spec": spec.describe(),
        "draws": size.draws,
        "inputs": size.inputs,
        "paths": size.paths,
        "tested_paths": counts["mean"],
        "tested_pairs": counts["pair"],
        "local_pairs": counts["local"],
        "pure_pool_paths": size.pure_pool_paths,
        "pure_pool_constant": size.pure_pool_constant,
        "rejections": int(size.tests["reject"].sum()),
        "min_p_mean": p_mean,
        "min_p_adj_mean": padj_mean,
        "min_p_pair": p_pair,
        "min_p_adj_pair": padj_pair,
        "rejected": size.rejected,
        "as_expected": size.as_expected,
        "shared_out_params": size.shared_out_params,
        "second_moments": {m.variance: m.as_dict() for m in size.exact},
        "notes": list(size.notes),
    }
    if size.monte_carlo is not None:
        row["monte_carlo"] = size.monte_carlo.as_dict()
    return row


def _intro(result: Lemma9Result) -> list[str]:
    cfg = result.config
    lines = [
        f"# Lemma 9 on {cfg.family} (init: {cfg.init})",
        "",
        "Under (H), distinct paths p != p' from one input have `E[w_p w_p'] = 0`, and a path with a",
        "random weight has `E[w_p] = 0` (a pure pooling path has its constant product). Each",
        "moment is estimated from independent weight draws and t-tested against 0; the p-values of",
        f"all tests of a size are Holm-corrected together (family-wise level {cfg.alpha:g}).",
        "",
        "Path products are heavy-tailed (a product of L Gaussians has kurtosis 3^L); under (H) each",
        "tested product is symmetric about 0, for which the t-test is conservative, so the level",
        "holds and the draws buy power. Pairs are capped: most are *local* (p' reroutes p through one",
        "other node, differing in four weights: the hardest case), the rest random pairs of paths",
        "from the same input.",
        "",
    ]
    if cfg.init == "shared":
        lines += [
            f"**Planted failure**: two layers share a Gaussian component (rho = {cfg.rho:g}); weights keep mean 0",
            "and variance 2/fan-in, but the layers are dependent (H4 and H5 fail). The test **must reject**:",
            "Lemma 9's verdict must be *inconsistent*.",
            "",
        ]
    return lines


def _settings(result: Lemma9Result, run: RunInfo) -> list[str]:
    cfg = result.config
    s0 = cfg.spec_tuple[0]
    opts = ", ".join(f"{k}={v}" for k, v in s0.family_options().items())
    lines = [
        "## Settings",
        "",
        *run_header(run),
        f"- family: `{s0.family}` ({opts or 'default options'}); dims {', '.join(str(s.dim) for s in cfg.spec_tuple)}",
        f"- Lemma 9: {cfg.draws} weight draws per size (init {cfg.init}"
        + (f", rho {cfg.rho:g}" if cfg.init == "shared" else "")
        + f"); up to {cfg.max_inputs} inputs, {cfg.max_paths} paths per input, {cfg.max_pairs} pairs in all; "
        f"family-wise level {cfg.alpha:g}",
    ]
    if cfg.mc_draws:
        lines.append(f"- Monte Carlo against Eq. 13: {cfg.mc_draws} He weight draws x 2 inputs per size")
    return [*lines, ""]


def _verdicts(result: Lemma9Result) -> list[str]:
    cfg = result.config
    return [
        "## Verdicts",
        "",
        table(
            ["claim", "predicted", "estimate", "95% CI", "verdict", "broken here"], claims_table_rows(result.claims)
        ).rstrip("\n"),
        "",
        (
            f"Lemma 9: the estimate is the smallest Holm-adjusted p-value; *consistent* when no test rejects at family-wise "
            f"level {cfg.alpha:g}, *inconsistent* when one does (or a pure pooling path's product is not its constant). "
            "Eq. 13 DP = operator: the estimate is the largest |difference|; *consistent* when every difference is within "
            "float64 rounding. Eq. 13 Monte Carlo: the estimate is MC/exact - 1 with the init's variances and its 95% BCa "
            "interval over draws; *consistent* when the interval lies in the band 0 +- "
            f"{result.config.settings()['mc_tolerance']:g}, *inconsistent* when it misses it, *inconclusive* otherwise."
        ),
        "",
        HYPOTHESES_LEGEND,
        "",
    ]


def _tests(result: Lemma9Result) -> list[str]:
    headers = [
        "dim",
        "d",
        "draws",
        "inputs",
        "paths tested",
        "pairs tested (local)",
        "min p (paths)",
        "min Holm p (paths)",
        "min p (pairs)",
        "min Holm p (pairs)",
        "rejections",
        "verdict",
    ]
    rows = []
    for size in result.sizes:
        r = size_payload(size)
        rows.append(
            [
                r["dim"],
                r["d"],
                r["draws"],
                r["inputs"],
                r["tested_paths"],
                f"{r['tested_pairs']} ({r['local_pairs']})",
                r["min_p_mean"],
                r["min_p_adj_mean"],
                r["min_p_pair"],
                r["min_p_adj_pair"],
                r["rejections"],
                _verdict_cell(size),
            ]
        )
    lines = ["## Lemma 9", "", table(headers, rows), ""]
    for size in result.sizes:
        if size.pure_pool_paths:
            ok = "equal" if size.pure_pool_constant else "NOT equal"
            lines.append(
                f"- dim {size.dim}: {size.pure_pool_paths} pure pooling paths; their products are {ok} to prod 1/a "
                "in every draw."
            )
        worst = size.tests.nsmallest(5, "p")
        lines += [f"### dim {size.dim}: the five smallest p-values", ""]
        lines.append(
            table(
                ["kind", "input", "edges", "estimate", "std. error", "t", "p", "Holm p"],
                worst[["kind", "input", "edges", "estimate", "stderr", "t", "p", "p_adj"]].itertuples(index=False),
            )
        )
        lines.append(
            "`edges`: random weights on the path (kind mean), or edges on exactly one of the two paths (kind pair)."
        )
        lines.append("")
        lines += [f"- {note}" for note in size.notes]
        lines.append("")
    return lines


def _second_moments(result: Lemma9Result) -> list[str]:
    lines = [
        "## Exact second moments under (H) (Eq. 13), logit 0",
        "",
        "`E||d_x f_k||_2^2` summed over the inputs, by DP on the DAG in exact fractions and by the",
        "operator form in float64. `he`: E[w^2] = 2/in-degree (ideal H3); `init`: 2/nominal fan-in,",
        "as the initialisation draws (they differ at zero-padded borders).",
        "",
        table(
            ["dim", "variance", "DP (exact)", "operator", "|difference|"],
            [[s.dim, m.variance, str(m.dp), m.operator, m.difference] for s in result.sizes for m in s.exact],
        ),
        "",
    ]
    mc = [(s, s.monte_carlo) for s in result.sizes if s.monte_carlo is not None]
    if not mc:
        return lines
    tol = result.config.settings()["mc_tolerance"]
    lines += [
        "### Monte Carlo against Eq. 13",
        "",
        (
            f"The engine's `||d_x f_c||_2^2` (He initialisation, whatever --init; label uniform), {result.config.mc_draws} "
            "weight draws x 2 inputs, per-draw means; MC ± its standard error, relative differences with their 95% BCa "
            "intervals over draws. For nets without weight sharing Eq. 13 is exact in expectation (sign symmetry of each "
            "neuron's weights; `graphs.moments`), so any gap there would be a bug; for CNNs H1 is an approximation. "
            f"Culprits are read on the intervals with the band 0 ± {tol:.0%}."
        ),
        "",
        table(
            [
                "dim",
                "MC E||.||^2",
                "(H) he",
                "(H) init",
                "MC/he - 1 [95% CI]",
                "MC/init - 1 [95% CI]",
                "likely culprit",
            ],
            [
                [
                    s.dim,
                    f"{format_number(c.mc_sq)} ± {format_number(c.mc_sq_se, 2)}",
                    c.he,
                    c.init,
                    f"{c.rel_he:+.1%} {_pct_interval(c.rel_he_interval)}",
                    f"{c.rel_init:+.1%} {_pct_interval(c.rel_init_interval)}",
                    c.culprit,
                ]
                for s, c in mc
            ],
        ),
        "",
    ]
    return lines


def render_lemma9(result: Lemma9Result, run: RunInfo) -> Rendered:
    cfg = result.config
    stem = report_stem(result)
    lines = [*_intro(result), *_settings(result, run), *_verdicts(result), *_tests(result), *_second_moments(result)]
    settings = cfg.settings()
    payload = {
        "arch": cfg.family,
        "init": cfg.init,
        "alpha": cfg.alpha,
        "seed": cfg.seed,
        "results": [size_payload(s) for s in result.sizes],
        "rejected": result.rejected,
        "as_expected": result.as_expected,
        "report": f"{stem}.md",
        # settings that change the numbers, missing from the old keys
        **{
            k: settings[k]
            for k in ("options", "dims", "draws", "shared_layers", "rho", "max_inputs", "max_paths", "max_pairs")
        },
        "mc_draws": cfg.mc_draws,
        "mc_batch": settings["mc_batch"],
    }
    summary_lines = [
        f"dim {s.dim}: {r['tested_paths']} paths and {r['tested_pairs']} pairs tested; smallest Holm p "
        f"{format_number(r['min_p_adj_mean'])} (paths), {format_number(r['min_p_adj_pair'])} (pairs); "
        f"Lemma 9 {s.lemma9.verdict.value}{_EXPECTATION[s.as_expected]}"
        for s in result.sizes
        for r in [size_payload(s)]
    ]
    rows = [
        [c.name, format_number(c.estimate), c.verdict.value, hypotheses_cell(c.hypotheses_broken)]
        for c in result.claims
    ]
    summary = table(["claim", "estimate", "verdict", "broken here"], rows) + "\n".join(summary_lines)
    counts = {v: sum(1 for c in result.claims if c.verdict is v) for v in Verdict}
    summary += "\n" + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
    return Rendered(
        stem=stem,
        markdown="\n".join(lines),
        figures={},
        json=envelope("lemma9", run, result.claims, payload),
        summary=summary,
    )
