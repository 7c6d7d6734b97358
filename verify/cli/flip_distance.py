"""``verify flip-distance``: the smallest class-changing perturbation against d (beyond the paper)."""

from __future__ import annotations

import argparse

from verify.cli import options as opt

HELP = "flip distance ||delta||_2/||x||_2 against d: line search, DeepFool, first order (slope -1/2, follow-up papers)"

EPILOG = """\
examples:
  verify flip-distance --arch dense --dims 64,256,1024,4096,16384          # the committed report
  verify flip-distance --arch dense --dims 64,256,1024 --draws 16 --json
  verify flip-distance --arch strided-cnn --dims 16,32,64 --channels 16 --draws 16

Per weight draw and standard normal input (float64), c = argmax f(x): the smallest step along
the normalised loss gradient (l_2) or its sign (l_inf) that changes the class (line search),
DeepFool's iterated minimum (l_2, l_inf) and the first-order prediction
min_k (f_c - f_k)/||d_x(f_c - f_k)||_q. Each as ||delta||_2/||x||_2, fitted against d and
compared with -1/2 (Daniely and Schacham 2020; Bubeck et al. 2021; Bartlett et al. 2021;
Montanari and Wu 2023), with the constant C of C d^(-1/2). Euler's identity
f(x) = <d_x f(x), x> of bias-free ReLU nets is checked on every input. Cost: K backward
passes per DeepFool iteration and ~40 forward passes per line search, per draw.
Report: OUT_DIR/flip-distance-ARCH.md and .png.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "flip-distance",
        help=HELP,
        description=(
            "Measure the smallest perturbation that changes the predicted class of He-initialised nets, by line "
            "search along the gradient, DeepFool and the first-order prediction, and fit it against d."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_arch_arguments(p)
    p.add_argument("--dims", required=True, help="comma-separated sizes (>= 2): image side n for CNNs, d otherwise")
    opt.add_sampling_arguments(p, draws=64, batch=2)
    g = p.add_argument_group("search")
    g.add_argument("--overshoot", type=float, default=0.02, help="DeepFool's overshoot (default 0.02)")
    g.add_argument("--max-iter", type=int, default=50, help="DeepFool's iterations at most (default 50)")
    g.add_argument(
        "--t-max", type=float, default=10.0, help="line search limit in units of ||x||_2 (l_2) or rms(x) (default 10)"
    )
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="precision (default float64)")
    opt.add_fit_arguments(p)
    opt.add_runtime_arguments(p)
    opt.add_output_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from verify import memory
    from verify.checks.flip_distance import METHODS, OTHER, FlipConfig, check_flip_distance
    from verify.report.flip_distance import render_flip_distance

    timer = opt.Timer()
    dims = opt.parse_dims(args.dims, at_least=2)
    opt.check_sampling_arguments(args)
    opt.check_fit_arguments(args)
    opt.check_runtime_arguments(args)
    specs = opt.specs_from_args(args, dims)
    config = FlipConfig(
        tuple(specs),
        draws=args.draws,
        batch=args.batch,
        seed=args.seed,
        overshoot=args.overshoot,
        max_iter=args.max_iter,
        t_max=args.t_max,
        margin=args.margin,
        n_boot=args.n_boot,
        dtype=args.dtype,
    )
    plan = memory.flip_distance_plan(
        config.specs,
        draws=config.draws,
        batch=config.batch,
        n_boot=config.n_boot,
        quantities=len(METHODS) + len(OTHER),
        dtype_bytes=8 if config.dtype == "float64" else 4,
        labels=[opt.size_label(args, s.dim) for s in config.specs],
    )
    opt.check_memory(args, plan, hint=opt.memory_hint(args, more=", or a smaller --batch"))
    return opt.execute(args, config, check_flip_distance, render_flip_distance, timer, dtype=config.dtype)
