"""``verify pooling``: Theorems 10 and 11, average pooling dampens input gradients."""

from __future__ import annotations

import argparse

from verify.cli import options as opt
from verify.cli import storage

HELP = "Theorems 10/11: E||d_x f_k||_2 against the product of pooling degrees, strided vs pooled"

EPILOG = """\
examples:
  verify pooling --arch avgpool-cnn --pools 1,2,4,8 --dims 128        # ~1 minute on 2 idle cores
  verify pooling --arch avgpool-cnn --pools 1,2,4,8 --dims 128 --padding circular
  verify pooling --arch avgpool-cnn --pools 1,2,4 --dims 64 --channels 64 --draws 128 --json
  verify pooling --arch avgpool-cnn --pools 1,3,9 --dims 144 --strides 1,2,2,2

x = prod a_i (a_i = window_i^2): the first window takes the values of --pools, the others
stay as --pool-windows (default: the strides). Per net: DRAWS He weight draws x BATCH normal
inputs, label uniform. Draw i of every net uses the streams (seed, i), so intervals (95%
BCa bootstrap) resample draw ids jointly across nets. Verdicts: the slope of
E||d_x f_c||_2 against prod a_i in -1/2 +- MARGIN, its square's in -1 +- 2 MARGIN; the mean
over windows of Monte Carlo / Eq. 13 - 1 (exact (H) value with the init's variances) in
0 +- 2 MARGIN; Theorem 11's ratio pooled/strided (pools = strides) within a factor
exp(+-MARGIN) of 1/prod sqrt(a_i).

Defaults: 16 channels (neither prediction depends on the width; 64 channels cost ~1 s per
draw at 128 px on 2 CPU cores) and 256 draws (the squared norm is heavy-tailed; the
bootstrap needs ~100 draws or more). Time grows linearly with DRAWS, the interval width
shrinks as 1/sqrt(DRAWS).
"""


# The defaults of verify.checks.pooling, repeated so that `verify --help` imports no torch
# (tests/verify/cli/test_pooling.py keeps them equal).
DEFAULT_DIM, DEFAULT_CHANNELS, DEFAULT_DRAWS, DEFAULT_BATCH = 128, 16, 256, 4


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pooling",
        help=HELP,
        description=(
            "Vary the first pooling window of avgpool-cnn at one input size, fit the slope of E||d_x f_k||_2 against "
            "the product of pooling degrees (Theorem 10), compare Monte Carlo with the exact (H) second moments "
            "(Eq. 13), and compare the strided net with the pooled one (Theorem 11)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_arch_arguments(
        parser, default_arch="avgpool-cnn", families=["avgpool-cnn"], defaults={"channels": DEFAULT_CHANNELS}
    )
    parser.add_argument(
        "--pools", default="1,2,4,8", help="windows k of the first pooling layer, a = k^2 (default 1,2,4,8)"
    )
    parser.add_argument(
        "--model",
        metavar="FILE.py:FACTORY",
        help="not available here: a factory FACTORY(n) has no pooling window to sweep (the error says what to run)",
    )
    parser.add_argument(
        "--dims",
        "--dim",
        dest="dims",
        default=str(DEFAULT_DIM),
        metavar="N",
        help=f"input side n, one size (default {DEFAULT_DIM}; '--dim' is the old name)",
    )
    opt.add_sampling_arguments(parser, draws=DEFAULT_DRAWS, batch=DEFAULT_BATCH)
    opt.add_fit_arguments(
        parser, what="the slope -1/2 and around the log of Theorem 11's ratio; doubled for the squared norm and Eq. 13"
    )
    opt.add_runtime_arguments(parser)
    opt.add_output_arguments(parser)
    storage.add_store_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from graphs.errors import InputError
    from graphs.families import int_tuple
    from verify import memory
    from verify.checks.pooling import PoolingConfig, check_pooling
    from verify.report.pooling import render_pooling

    timer = opt.Timer()
    if args.model is not None:
        raise InputError(
            "verify pooling sweeps the first pooling window of avgpool-cnn, and FACTORY(n) has no window to vary; "
            f"for your module run verify scaling --model {args.model} (or verify paths --model) instead"
        )
    if args.arch != "avgpool-cnn":
        raise InputError(
            f"verify pooling sweeps the first pooling window of avgpool-cnn; got --arch {args.arch}, use --arch avgpool-cnn"
        )
    dims = opt.parse_dims(args.dims)
    if len(dims) != 1:
        raise InputError(
            f"--dims: verify pooling takes one size (the windows vary, not d), got {args.dims}; e.g. --dims 128"
        )
    family = opt.family_options(args)
    others = family.pop("pools", None)
    opt.check_sampling_arguments(args)
    opt.check_fit_arguments(args)
    opt.check_runtime_arguments(args)
    config = PoolingConfig(
        dim=dims[0],
        pools=int_tuple(args.pools, "--pools"),
        pool_windows=others,
        draws=args.draws,
        batch=args.batch,
        seed=args.seed,
        margin=args.margin,
        n_boot=args.n_boot,
        **family,
    )
    setup = config.setup
    nets = (*setup.sweep, setup.strided)
    labels = [f"{opt.size_label(args, config.dim)} --pools {w[0]}" for w in setup.windows] + [
        f"{opt.size_label(args, config.dim)} (strided net)"
    ]
    plan = memory.pooling_plan(nets, draws=config.draws, batch=config.batch, n_boot=config.n_boot, labels=labels)
    opt.check_memory(args, plan, hint="give a smaller --dims or --channels, or fewer --draws")
    return opt.execute(args, config, check_pooling, render_pooling, timer, store="pooling")
