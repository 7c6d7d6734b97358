"""``verify paths``: exact path sums (Lemmas 7, 8), symmetry (S), (S-bounded) and H3 per size."""

from __future__ import annotations

import argparse

from verify.cli import options as opt

HELP = "exact path sums (Lemmas 7, 8), symmetry (S), (S-bounded) and H3 per size"

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
report). Three claims: Lemma 7, Lemma 8 where (S) holds, and (S-bounded) on the two largest
sizes. The report goes to OUT_DIR/paths-ARCH.md, with a heatmap for image families.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from verify.settings import EXACT_MAX_EDGES

    parser = subparsers.add_parser(
        "paths",
        help=HELP,
        description=(
            "Compute P(x, o) = sum over paths x -> o of prod 1/d_p for every input x and logit o; "
            "check Lemma 7 (sum_x P = 1), Lemma 8 (d P = 1 under (S)), the symmetry (S), (S-bounded) and H3."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_arch_arguments(parser)
    parser.add_argument("--dims", required=True, help="comma-separated sizes: image side n for CNNs, d otherwise")
    parser.add_argument(
        "--exact",
        action="store_true",
        help=f"exact Fractions on the networkx DAG (at most {EXACT_MAX_EDGES:.0e} edges)",
    )
    parser.add_argument("--trials", type=int, default=4, help="trials of the randomised (S) test (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the randomised (S) test (default 0)")
    opt.add_memory_argument(parser)
    opt.add_output_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from verify import memory
    from verify.checks.paths import PathsConfig, check_paths
    from verify.report.paths import render_paths

    timer = opt.Timer()
    dims = opt.parse_dims(args.dims)
    opt.check_runtime_arguments(args)
    specs = opt.specs_from_args(args, dims)
    labels = {s.dim: opt.size_label(args, s.dim) for s in specs}
    # Before the config: its --exact edge count walks the net's in-degree maps.
    plan = memory.paths_plan(specs, exact=args.exact, labels=[labels[s.dim] for s in specs])
    opt.check_memory(args, plan, hint=opt.memory_hint(args, more=", or drop --exact" if args.exact else ""))
    config = PathsConfig(tuple(specs), exact=args.exact, trials=args.trials, seed=args.seed)
    # CPU only: the randomised (S) test relies on exact float64 integer arithmetic there.
    dtype = "fraction" if args.exact else "float64"
    return opt.execute(args, config, check_paths, render_paths, timer, dtype=dtype, device="cpu", takes_runtime=False)
