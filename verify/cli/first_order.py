"""``verify first-order``: Lemma 2 against real attacks, Prop. 3, Eq. 3's SNR and Remark 1."""

from __future__ import annotations

import argparse

from verify.cli import options as opt
from verify.cli import storage

HELP = "Lemma 2 vs real attacks, Prop. 3, Eq. 3 SNR and Remark 1 at initialisation"

EPILOG = """\
examples:
  verify first-order --arch dense --dims 256,1024,4096 --eps 1e-4,1e-3,1e-2,1e-1
  verify first-order --arch dense --dims 256,1024 --norms inf --draws 32 --json
  verify first-order --arch strided-cnn --dims 16,32 --channels 16 --draws 8 --batch 8
  verify first-order --arch dense --dims 256,1024 --pgd-steps 30   # a PGD that converges

eps is eps_inf; each norm p uses eps_p = eps_inf * d^(1/p) (Eq. 3). The Lemma 2 ratio is
E[L(x + delta) - L(x)] / E[eps_p ||d_x L||_q] per weight draw, t intervals over draws, and
judged at the smallest eps against 1 (one-step) or against the fraction of the optimum the
PGD schedule reaches on a linear loss (PGD). Fitted orders, slopes and the SNR spread get BCa
bootstrap intervals over draws, paired (every eps, norm and size uses the same draw ids).
--threads defaults to 1: the work is many small ops, for which intra-op threads cost more in
synchronisation than they gain, badly so on a busy machine.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "first-order",
        help=HELP,
        description="How much of the loss increase of real attacks the first-order term explains (Lemma 2), "
        "the augmented vs penalised loss (Prop. 3), the SNR under Eq. 3's budgets and Remark 1, at He initialisation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_arch_arguments(parser)
    parser.add_argument("--dims", default="256,1024,4096", help="input sizes (comma-separated; default 256,1024,4096)")
    parser.add_argument(
        "--eps", default="1e-4,1e-3,1e-2,1e-1", help="eps_inf values, at least two (default 1e-4,1e-3,1e-2,1e-1)"
    )
    parser.add_argument("--norms", default="inf,2", help="attack norms, a subset of inf,2 (default inf,2)")
    opt.add_sampling_arguments(parser, draws=16, batch=32)
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="precision (default float64: the small-eps differences need it)",
    )
    parser.add_argument("--pgd-steps", type=int, default=7, help="PGD steps (default 7, the paper's section 4.1)")
    parser.add_argument("--pgd-step-size", type=float, default=0.2, help="PGD step as a fraction of eps (default 0.2)")
    opt.add_fit_arguments(parser, what="each predicted ratio", margin=0.1)
    opt.add_runtime_arguments(parser, threads=1)
    opt.add_output_arguments(parser)
    storage.add_store_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from verify import memory
    from verify.checks.first_order import FirstOrderConfig, check_first_order
    from verify.report.first_order import render_first_order

    timer = opt.Timer()
    dims = opt.parse_dims(args.dims)
    opt.check_sampling_arguments(args)
    opt.check_fit_arguments(args)
    opt.check_runtime_arguments(args)
    specs = opt.specs_from_args(args, dims)
    config = FirstOrderConfig(
        tuple(specs),
        eps_inf=tuple(args.eps.split(",")),  # the config parses and validates the numbers
        norms=tuple(n.strip() for n in args.norms.split(",")),
        draws=args.draws,
        batch=args.batch,
        seed=args.seed,
        dtype=args.dtype,
        pgd_steps=args.pgd_steps,
        pgd_step_size=args.pgd_step_size,
        margin=args.margin,
        n_boot=args.n_boot,
    )
    plan = memory.first_order_plan(
        config.specs,
        draws=config.draws,
        batch=config.batch,
        n_boot=config.n_boot,
        n_eps=len(config.eps_inf),
        n_norms=len(config.norms),
        dtype_bytes=8 if config.dtype == "float64" else 4,
        labels=[opt.size_label(args, s.dim) for s in config.specs],
    )
    opt.check_memory(args, plan, hint=opt.memory_hint(args, more=", or a smaller --batch"))
    return opt.execute(
        args, config, check_first_order, render_first_order, timer, dtype=config.dtype, store="first-order"
    )
