"""``verify paths``: exact path sums (Lemmas 7 and 8), symmetry (S) and hypothesis H3 per size."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from graphs.dag import output_nodes, to_dag
from graphs.errors import InputError
from graphs.hypotheses import h3_violation_fraction
from graphs.pathsums import operator_path_sums, output_classes, path_sums_dp, spec_edge_count
from graphs.spec import IMAGE_FAMILIES, Spec, parse_dims
from graphs.symmetry import SymmetryVerdict, dag_symmetry_verdict, symmetry_verdict
from verify.options import add_arch_arguments, add_output_arguments, positive_int, specs_from_args
from verify.reporting import (
    atomic_save_figure,
    atomic_write_text,
    ensure_writable_dir,
    format_number,
    json_text,
    library_versions,
    markdown_table,
)

__all__ = ["add_parser", "run", "EXACT_MAX_EDGES", "PathRow", "path_row"]

# networkx holds ~1 kB per edge and the Fraction DP does ~10^5 edges per second: beyond this
# the exact mode takes minutes and gigabytes, and the operator form gives the same numbers.
EXACT_MAX_EDGES = 2_000_000

EPILOG = """\
examples:
  verify paths --arch strided-cnn --dims 16,32 --padding circular
  verify paths --arch strided-cnn --dims 32,64,128,256            # zero padding: (S) and H3 fail at the boundary
  verify paths --arch dense --dims 8,16 --exact                   # exact Fractions on the DAG
  verify paths --arch random-dag --dims 8,12 --exact --json
  verify paths --arch strided-cnn --dims 9,27 --strides 3,3 --padding circular   # kernel == stride: (S) holds

Every row gives d, the Lemma 7 total sum_x P(x, o) (1 on every DAG), the range of d * P(x, o)
over inputs x and outputs o (both ends 1 exactly when Lemma 8 applies), whether (S) holds
for every output, and the fraction of random-weight neurons whose He initialisation uses a
fan-in different from their in-degree (H3 broken). Without --exact, path sums use the
operator form in float64 (full-size nets in seconds) and (S) uses the exact DAG polynomials
when the DAG is small, a randomised identity test otherwise (false-positive bound in the
report). The report goes to OUT_DIR/paths-ARCH.md, with a heatmap for image families.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "paths",
        help="exact path sums (Lemmas 7, 8), symmetry (S) and H3 per size",
        description=(
            "Compute P(x, o) = sum over paths x -> o of prod 1/d_p for every input x and logit o; "
            "check Lemma 7 (sum_x P = 1), Lemma 8 (d P = 1 under (S)), the symmetry (S) and H3."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arch_arguments(parser)
    parser.add_argument("--dims", required=True, help="comma-separated sizes: image side n for CNNs, d otherwise")
    parser.add_argument("--exact", action="store_true", help=f"exact Fractions on the networkx DAG (at most {EXACT_MAX_EDGES:.0e} edges)")
    parser.add_argument("--trials", type=int, default=4, help="trials of the randomised (S) test (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the randomised (S) test (default 0)")
    add_output_arguments(parser)
    parser.set_defaults(func=run)
    return parser


@dataclass
class PathRow:
    """One size: the numbers of the table, plus the scaled path sums of output 0 for the heatmap."""

    spec: Spec
    lemma7_total: float
    lemma7_exact: Fraction | None  # the exact total farthest from 1 (exact mode)
    dp_min: float
    dp_max: float
    symmetry: SymmetryVerdict
    h3_fraction: float
    scaled_first_output: np.ndarray  # d * P(x, o_0), shape spec.input_shape

    def as_json(self) -> dict:
        return {
            "dim": self.spec.dim,
            "d": self.spec.d,
            "lemma7_total": self.lemma7_total,
            "path_sum_times_d_min": self.dp_min,
            "path_sum_times_d_max": self.dp_max,
            "symmetric": bool(self.symmetry.symmetric),
            "h3_violation_fraction": self.h3_fraction,
        }


def _farthest_from_one(values):
    return max(values, key=lambda v: abs(v - 1))


def path_row(spec: Spec, *, exact: bool = False, trials: int = 4, seed: int = 0) -> PathRow:
    """Path sums, (S) and H3 for one spec: exact DAG + Fractions, or the operator form."""
    if exact:
        g = to_dag(spec)
        outs = output_nodes(g)
        classes = output_classes(spec)
        totals, lows, highs = [], [], []
        first = None
        for members in classes:
            sums = path_sums_dp(g, outs[members[0]], exact=True)
            values = [sums[(0, i)] for i in range(spec.d)]
            totals.append(sum(values, Fraction(0)))
            scaled = [spec.d * v for v in values]
            lows.append(min(scaled))
            highs.append(max(scaled))
            if 0 in members:
                first = np.array([float(v) for v in scaled]).reshape(spec.input_shape)
        verdict = dag_symmetry_verdict(g, [outs[c[0]] for c in classes])
        worst = _farthest_from_one(totals)
        return PathRow(spec, float(worst), worst, float(min(lows)), float(max(highs)), verdict, h3_violation_fraction(spec), first)
    P = operator_path_sums(spec).numpy()
    scaled = spec.d * P
    totals = P.sum(axis=1)
    verdict = symmetry_verdict(spec, trials=trials, seed=seed)
    return PathRow(
        spec,
        float(_farthest_from_one(totals.tolist())),
        None,
        float(scaled.min()),
        float(scaled.max()),
        verdict,
        h3_violation_fraction(spec),
        scaled[0].reshape(spec.input_shape),
    )


def _validate(args: argparse.Namespace) -> tuple[list[Spec], Path]:
    dims = parse_dims(args.dims)
    specs = specs_from_args(args, dims)
    if args.trials < 1:
        raise InputError(f"--trials: {args.trials} is not positive; give e.g. --trials 4")
    positive_int("--seed", args.seed, 0)  # seeds feed numpy's SeedSequence, which refuses negatives
    if args.exact:
        for spec in specs:
            edges = spec_edge_count(spec)
            if edges > EXACT_MAX_EDGES:
                raise InputError(
                    f"--exact: the DAG of {spec.describe()} has {edges:.3g} edges (limit {EXACT_MAX_EDGES:.0e}); "
                    "drop --exact to use the operator form, or give smaller --dims or --channels"
                )
    out_dir = ensure_writable_dir(args.out_dir)
    return specs, out_dir


def _heatmap(rows: list[PathRow], arch: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    channels = rows[0].spec.input_shape[0]
    fig, axes = plt.subplots(len(rows), channels, figsize=(3.2 * channels + 1, 3.0 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        img = row.scaled_first_output
        lo, hi = float(img.min()), float(img.max())
        # White is d P = 1 (Lemma 8's value): colour shows where and how far (S) fails.
        norm = TwoSlopeNorm(vmin=min(lo, 1 - 1e-9), vcenter=1.0, vmax=max(hi, 1 + 1e-9))
        for c in range(channels):
            ax = axes[r][c]
            im = ax.imshow(img[c], cmap="RdBu_r", norm=norm, interpolation="nearest")
            ax.set_title(f"n={row.spec.dim}, channel {c}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=list(axes[r]), shrink=0.8, label="d * P(x, o)")
    fig.suptitle(f"{arch}, padding {rows[0].spec.padding}: d * P(x, o) for logit o = 0", fontsize=11)
    try:
        return atomic_save_figure(fig, path)
    finally:
        plt.close(fig)


def _symmetry_cell(v: SymmetryVerdict) -> str:
    if v.method == "dag-polynomial":
        return "yes (exact)" if v.symmetric else "no (exact)"
    if not v.symmetric:
        return "no (certified)"
    return f"yes (p_fp <= {v.false_positive_bound:.1e})"


def _table(rows: list[PathRow], *, exact_totals: bool) -> str:
    """The per-size table of the report and of the terminal (``exact_totals``: Fractions as such)."""
    headers = ["dim", "d", "Lemma 7 total", "min d*P", "max d*P", "(S)", "H3 violation fraction"]
    table = []
    for row in rows:
        if exact_totals and row.lemma7_exact is not None:
            total = f"{row.lemma7_exact} (exact)"
        else:
            total = format_number(row.lemma7_total, 16)
        table.append([row.spec.dim, row.spec.d, total, row.dp_min, row.dp_max, _symmetry_cell(row.symmetry), row.h3_fraction])
    return markdown_table(headers, table)


def _markdown(args, rows: list[PathRow], heatmap: Path | None, command: str) -> str:
    spec0 = rows[0].spec
    exact = args.exact
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    randomised = [r for r in rows if r.symmetry.method == "randomised"]
    lines = [
        f"# Path sums: {spec0.family}" + (f", padding {spec0.padding}" if spec0.padding else ""),
        "",
        f"Command: `{command}`  ",
        f"Method: {'exact Fractions by dynamic programming on the networkx DAG' if exact else 'operator form in float64 (one backward pass per class of logits with identical in-edges)'}  ",
        f"Architecture at the first size: {spec0.describe()}  ",
        f"Versions: {versions}",
        "",
        _table(rows, exact_totals=True),
        "## How to read this",
        "",
        "- `P(x, o)` is the sum over all paths from input x to logit o of the product of `1/d_p` over the path "
        "without its input node (`d_p` the in-degree, parallel edges counted).",
        "- **Lemma 7 total** is `sum_x P(x, o)`, shown for the logit where it is farthest from 1. It is exactly 1 on "
        "every DAG; in float64 it may differ from 1 by rounding (~1e-15).",
        "- **min/max d*P** range over every input x and logit o. Lemma 8: under (S) both are exactly 1. A spread "
        "means some inputs carry more paths (weighted by 1/d_p) than others: `d*P > 1` inputs get more of the gradient's variance.",
        "- **(S)** says whether every input has the same multiset of path-degrees to every logit. `exact` = compared "
        "path-degree polynomials on the DAG; `certified` = two inputs gave different exact residues in the randomised test "
        "(no error possible); `p_fp <= ...` = the randomised test found no difference, and the bound is the probability "
        "that (S) nevertheless fails.",
        "- **H3 violation fraction**: share of random-weight neurons (logits included, pooling excluded) whose in-degree "
        "differs from the nominal fan-in used by He initialisation (so their weight variance is not 2/in-degree). Zero "
        "padding makes boundary neurons violate it; circular and reflect padding do not.",
        "",
        "## False-positive bound of the randomised (S) test",
        "",
        "Each input's path-degree polynomial `Q_x(z) = sum_paths prod z_{d_p}` is evaluated through the operator form at a "
        "uniform random point modulo a random prime p from `(P/2, P]`, with P the largest modulus for which every "
        "intermediate stays below 2^53 (so float64 arithmetic is exact; the mod is taken after each layer). If (S) fails "
        "for some input, one trial misses it with probability at most `eps = L/(P/2) + floor(log N / log(P/2)) / #primes` "
        "(Schwartz-Zippel over F_p with L the number of layers, plus the chance that p divides every coefficient of the "
        "difference; N bounds the path counts). With t independent trials the verdict is wrong with probability at most "
        "`eps^t`; a statement about each of the d inputs separately costs the union bound `d eps^t`.",
        "",
    ]
    if randomised:
        lines.append(
            "Randomised tests here: "
            + "; ".join(
                f"dim {r.spec.dim}: {r.symmetry.trials} trial(s), primes {', '.join(map(str, r.symmetry.primes))}"
                + (f", bound {r.symmetry.false_positive_bound:.2e}" if r.symmetry.symmetric else ", failure certified")
                for r in randomised
            )
        )
        lines.append("")
    if heatmap is not None:
        lines += [
            "## Heatmap",
            "",
            "`d * P(x, o)` for logit o = 0 over the input image, one panel per input channel, one row per size. White is "
            "1 (Lemma 8's value under (S)); red inputs carry more weighted paths, blue fewer. Boundary effects of zero "
            "padding and the stride-parity pattern of strided layers show here.",
            "",
            f"![d * P(x, o)]({heatmap.name})",
            "",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    specs, out_dir = _validate(args)
    quiet = args.json or not sys.stderr.isatty()
    rows = [
        path_row(spec, exact=args.exact, trials=args.trials, seed=args.seed)
        for spec in tqdm(specs, desc="paths", unit="size", file=sys.stderr, disable=quiet)
    ]
    arch = args.arch
    heatmap = None
    if arch in IMAGE_FAMILIES:
        heatmap = _heatmap(rows, arch, out_dir / f"paths-{arch}.png")
    command = args.command_line
    report = atomic_write_text(out_dir / f"paths-{arch}.md", _markdown(args, rows, heatmap, command))
    payload = {"arch": arch, "padding": specs[0].padding, "rows": [r.as_json() for r in rows]}
    if args.json:
        print(json_text(payload))
    else:
        print(_table(rows, exact_totals=False), end="")
        print(f"report: {report}" + (f"\nheatmap: {heatmap}" if heatmap else ""))
    return 0


