"""Path-sum speed: the operator form on the full paper net, and the DAG dynamic programming.

Prints, for the 3 x 256 x 256 strided CNN (64 channels; zero and circular padding): the
operator-form time for P(., o) of one logit and of all logits (one pass per class of logits
with identical in-edges), the edges it covers per second, and the randomised (S) test (its
exact float64 modular passes, guarded against reaching 2^53). Then DP edges per second in
float64 and with Fractions on mid-size DAGs, and the operator form's edge rate as a multiple
of the float64 DP's, measured in the same run.

    python bench/bench_paths.py [--n 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/...` from anywhere: this checkout's code, not an installed one
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from graphs.dag import output_nodes, to_dag  # noqa: E402
from graphs.hypotheses import h3_violation_fraction  # noqa: E402
from graphs.operator import path_sums_operator  # noqa: E402
from graphs.pathsums import operator_path_sums, path_sums_dp, spec_edge_count  # noqa: E402
from graphs.spec import build_spec  # noqa: E402
from graphs.symmetry import randomised_symmetry  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="image side of the paper net (default 256)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    op_rates = []
    for padding in ("zeros", "circular"):
        spec = build_spec("strided-cnn", args.n, padding=padding)
        edges = spec_edge_count(spec)
        t_one, _ = best_of(lambda spec=spec: path_sums_operator(spec, [0]), args.repeats)
        t_all, P_all = best_of(lambda spec=spec: operator_path_sums(spec), 1)
        scaled = spec.d * P_all
        t_sym, verdict = best_of(lambda spec=spec: randomised_symmetry(spec, trials=2, seed=0), 1)
        t_h3, h3 = best_of(lambda spec=spec: h3_violation_fraction(spec), 1)
        op_rates.append(edges / t_one)
        print(f"\nstrided-cnn 3x{args.n}x{args.n}, 64 channels, padding {padding}: d = {spec.d}, {edges:.3e} edges")
        print(f"  operator form, one logit:        {t_one:7.3f} s  ({edges / t_one:.3e} edges/s)")
        print(f"  operator form, all {spec.num_classes} logits:     {t_all:7.3f} s")
        print(
            f"  Lemma 7 total - 1: {float(P_all.sum(1).sub(1).abs().max()):.2e};  d*P in [{float(scaled.min()):.4f}, {float(scaled.max()):.4f}]"
        )
        print(
            f"  randomised (S) test:             {t_sym:7.3f} s  -> symmetric={verdict.symmetric} "
            f"after {verdict.trials} trial(s), primes {verdict.primes}"
            + (
                f", false-positive bound {verdict.false_positive_bound:.2e}"
                if verdict.symmetric
                else ", failure certified"
            )
        )
        print(f"  H3 violation fraction:           {t_h3:7.3f} s  -> {h3:.6f}")

    # A net where (S) holds, so every trial runs: stride-1 convolutions with circular padding.
    spec = build_spec("strided-cnn", 64, padding="circular", strides=(1, 1, 1, 1))
    t_sym, verdict = best_of(lambda: randomised_symmetry(spec, trials=4, seed=0), 1)
    print(
        f"\n(S) holds: {spec.describe()}, {spec_edge_count(spec):.3e} edges: randomised test {t_sym:.3f} s for "
        f"{verdict.trials} trials -> symmetric={verdict.symmetric}, false-positive bound {verdict.false_positive_bound:.2e}"
    )

    print("\nDP on mid-size DAGs (edges = edges of the ancestors of one logit):")
    dp_rates = []
    for fam, n, opts in [
        ("dense", 256, {"widths": (256, 256)}),
        ("strided-cnn", 16, {"channels": 8, "padding": "zeros"}),
        ("random-dag", 512, {"hidden": (512, 512, 512), "max_in_degree": 64}),
    ]:
        spec = build_spec(fam, n, **opts)
        g = to_dag(spec)
        o = output_nodes(g)[0]
        anc = nx.ancestors(g, o) | {o}
        e = g.subgraph(anc).number_of_edges()
        t_f, _ = best_of(lambda g=g, o=o: path_sums_dp(g, o), args.repeats)
        t_q, _ = best_of(lambda g=g, o=o: path_sums_dp(g, o, exact=True), 1)
        dp_rates.append(e / t_f)
        print(
            f"  {spec.describe()}: {e} edges; float64 {t_f:.3f} s ({e / t_f:.3e} edges/s), "
            f"Fraction {t_q:.3f} s ({e / t_q:.3e} edges/s, {t_q / t_f:.1f}x slower)"
        )
    print(
        f"\noperator form covers edges {min(op_rates) / max(dp_rates):.0f}x to {max(op_rates) / min(dp_rates):.0f}x faster than the float64 DP (same run)"
    )


if __name__ == "__main__":
    main()
