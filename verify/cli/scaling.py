"""``verify scaling``: slopes of gradient norms and vulnerability against d (Thm 4, 5, Cor 6)."""

from __future__ import annotations

import argparse

from verify.cli import options as opt
from verify.cli import storage

HELP = "Monte Carlo slopes of gradient norms and vulnerability against d (Thm 4, 5, Cor 6)"

EPILOG = """\
examples:
  verify scaling --arch strided-cnn --dims 32,64,128,256                  # the paper's net, about a minute on 2 cores
  verify scaling --arch strided-cnn --dims 64,96,128,192,256 --draws 320  # the main job: with the finite-size fit
  verify scaling --arch strided-cnn --dims 32,64,128,256 --padding circular --draws 200
  verify scaling --arch dense --dims 64,256,1024,4096 --draws 32 --json
  verify scaling --arch random-dag --dims 64,128,256,512 --quantities logit_grad_l2,vuln_l2
  verify scaling --arch strided-cnn --dims 32,64,128 --inputs upsampled --device auto
  verify scaling --arch strided-cnn --dims 32,64,128,256,512,1024 --draws 640 --device cuda   # one GPU, < 1 min (goal)
  verify scaling --arch strided-cnn --dims 32,64,128,256 --device cuda --precision bf16

--precision: fp32 (default) is float32 with TF32 off; tf32 lets a GPU use TF32; bf16 runs
the nets in bfloat16. The report's settings state the measured per-sample error of the
run's precision against float64 (draw 0 of the largest size, computed again in float64).

For every size: DRAWS He-initialised weight draws (default 160) and BATCH standard normal
inputs per draw (default 2), labels uniform over the classes. Per sample: ||d_x L||_1,
||d_x L||_2, ||d_x L||_inf, ||d_x f_c||_2, mean |coordinate| of d_x f_c (c the label) and the
vulnerabilities eps_p ||d_x L||_q with eps_p = eps_inf d^(1/p), p = inf, 2. The slope of
log E[Q] against log d is fitted by least squares; its 95% interval is a BCa bootstrap over
weight draws (inputs of one draw share its weights, so they are averaged first; draw i of
every size comes from (seed, i), so ids are resampled jointly). A verdict is 'consistent'
when the whole interval lies in predicted +- MARGIN, 'inconsistent' when it misses that band,
'inconclusive' otherwise (with the draws that would likely settle it). ||d_x L||_inf is
predicted up to the growth of the maximum of d coordinates: it is fitted after dividing by
the expected maximum of d absolute standard normals (its raw slope is reported too).

The defaults keep the main command at about 75 CPU-seconds (2 CPU cores: the goal is under
30 s of wall time on a quiet machine): the 3x256x256 size dominates (~110 ms of one core per
sample for one forward and two backward passes, bench/bench_engine.py), and the interval's
width is set by the number of weight draws, so the budget goes to draws rather than inputs
per draw. The width shrinks like 1/sqrt(DRAWS): 4x the draws halve it. Below ~100 draws the
bootstrap interval tends to be too narrow.

E||d_x f_c||_2^2 (logit_grad_l2_sq, added with logit_grad_l2) is compared size by size with its
exact value under (H), Eq. 13 with the variances the initialisation really draws (zero-padded
borders included), and the slope of that exact curve is shown beside the fitted one. With five
sizes or more, every quantity is also fitted as log E[Q] = beta log d + alpha + c d^e (e = -1/2
for a padded border, -1 otherwise) and beta gets its own verdict. For the zero-padded paper net
use sizes that are multiples of 32 (64,96,128,192,256): other sides give odd feature maps whose
border share jumps from size to size, which no smooth correction describes.

The report (OUT_DIR/scaling-ARCH.md, plot beside it) carries the exact (S), H3 and H5 status
of every sampled net: with zero padding H3 fails at the image border; (S) fails for 3x3
stride-2 convolutions even with circular padding, but d*P(x,o) stays bounded there, which is
all Corollary 6's slopes need; the report says which hypothesis each verdict relies on.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    # from verify.settings, not verify.theory: --help must not import numpy
    from verify.settings import EPS_INF, SCALING_QUANTITIES

    parser = subparsers.add_parser(
        "scaling",
        help=HELP,
        description=(
            "Sample He-initialised nets at several input sizes, measure per-sample input gradients, fit the exponent "
            "of each quantity against d with a bootstrap interval and compare it with the theorems."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_arch_arguments(parser)
    parser.add_argument(
        "--dims", required=True, help="comma-separated sizes (>= 2): image side n for CNNs, d otherwise"
    )
    opt.add_sampling_arguments(parser, draws=160, batch=2)
    parser.add_argument(
        "--inputs",
        default="normal",
        choices=("normal", "upsampled"),
        help="standard normal inputs, or normal images at the smallest size upsampled by copying pixels (default normal)",
    )
    parser.add_argument(
        "--quantities", default=None, help=f"comma-separated subset of: {', '.join(SCALING_QUANTITIES)} (default all)"
    )
    parser.add_argument(
        "--eps-inf",
        type=float,
        default=EPS_INF,
        help=f"l_inf budget of the vulnerabilities (default {EPS_INF}; scales them, never their slope)",
    )
    opt.add_fit_arguments(parser)
    opt.add_runtime_arguments(parser, precision=True)
    opt.add_output_arguments(parser)
    storage.add_store_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from verify import memory
    from verify.checks.scaling import ScalingConfig, check_scaling
    from verify.report.scaling import render_scaling
    from verify.theory import SCALING_QUANTITIES

    timer = opt.Timer()
    dims = opt.parse_dims(args.dims, at_least=2)
    opt.check_sampling_arguments(args)
    opt.check_fit_arguments(args)
    opt.check_runtime_arguments(args)
    specs = opt.specs_from_args(args, dims)
    quantities = (
        tuple(q.strip() for q in args.quantities.split(",") if q.strip())
        if args.quantities is not None
        else SCALING_QUANTITIES
    )
    config = ScalingConfig(
        tuple(specs),
        draws=args.draws,
        batch=args.batch,
        seed=args.seed,
        inputs=args.inputs,
        quantities=quantities,
        eps_inf=args.eps_inf,
        margin=args.margin,
        n_boot=args.n_boot,
        precision=args.precision,
    )
    plan = memory.scaling_plan(
        config.specs,
        draws=config.draws,
        batch=config.batch,
        n_boot=config.n_boot,
        labels=[opt.size_label(args, s.dim) for s in config.specs],
    )
    opt.check_memory(args, plan, hint=opt.memory_hint(args, more=", or fewer --draws"))
    return opt.execute(args, config, check_scaling, render_scaling, timer, store="scaling", precision=args.precision)
