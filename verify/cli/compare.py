"""``verify compare``: the scaling check of several architectures in one report (one table, one plot)."""

from __future__ import annotations

import argparse

from verify.cli import options as opt

HELP = "slopes of the vulnerabilities against d for several architectures side by side, with their hypotheses"

EPILOG = """\
examples:
  verify compare                                                    # the default set, a few minutes on 2 cores
  verify compare --archs strided-cnn,avgpool-cnn,resnet,paper-net,vit --dims 32,64,128
  verify compare --archs resnet,resnet:add-relu=off,resnet:head=flatten --dims 32,64,128
  verify compare --archs paper-net,paper-net:bn=off,paper-net:pool=avg --draws 64 --json
  verify compare --archs vit,vit:grid=4 --dims 32,64,128             # fixed patch size against fixed token count
  verify compare --archs resnet,model=examples/resnet18.py:resnet18 --dims 32,64,128   # your module beside a family

Each architecture is a family name, optionally followed by ':FLAG=VALUE' pairs (the family's
flags without the dashes; lists with dots, e.g. resnet:blocks=2.2.2:bn=on), or
model=FILE.py:FACTORY for your own module (image inputs, He draws; the file is executed because
you name it). Every architecture runs the scaling check over the same sizes and weight draws;
the comparison's own default options are narrower than the families' (16 channels, a ResNet of
width 8 with one block per stage, a ViT with 8x8 patches and width 32) to keep the default run
within a few minutes on 2 CPU cores; widths move no predicted slope.

The report (OUT_DIR/compare.md and compare.png) has one table of the fitted slopes of
vuln_linf and vuln_l2 (and of E||d_x f||_2) with 95% intervals and verdicts against sqrt(d),
the slope Eq. 13 predicts under (H) where it has a value, which hypotheses each architecture
breaks (by construction, or (S), H3 at the sizes checked), one sentence per architecture on
what explains its result, and one plot with every architecture on shared log axes.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from verify.settings import COMPARE_ARCHS as DEFAULT_ARCHS
    from verify.settings import COMPARE_BATCH as DEFAULT_BATCH
    from verify.settings import COMPARE_DIMS as DEFAULT_DIMS
    from verify.settings import COMPARE_DRAWS as DEFAULT_DRAWS
    from verify.theory import EPS_INF

    parser = subparsers.add_parser(
        "compare",
        help=HELP,
        description="Run the scaling check on several architectures and put their slopes, verdicts and "
        "hypotheses in one table and one plot.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--archs",
        default=",".join(DEFAULT_ARCHS),
        help=f"comma-separated ARCH[:FLAG=VALUE...] (default {','.join(DEFAULT_ARCHS)})",
    )
    parser.add_argument(
        "--dims",
        default=",".join(map(str, DEFAULT_DIMS)),
        help=f"comma-separated image sides (>= 2 sizes; default {','.join(map(str, DEFAULT_DIMS))})",
    )
    opt.add_sampling_arguments(parser, draws=DEFAULT_DRAWS, batch=DEFAULT_BATCH)
    parser.add_argument(
        "--eps-inf", type=float, default=EPS_INF, help=f"l_inf budget of the vulnerabilities (default {EPS_INF})"
    )
    opt.add_fit_arguments(parser)
    opt.add_runtime_arguments(parser)
    opt.add_output_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from verify import memory
    from verify.checks.compare import CompareConfig, check_compare
    from verify.report.compare import render_compare

    timer = opt.Timer()
    dims = opt.parse_dims(args.dims, at_least=2)
    archs = tuple(a.strip() for a in args.archs.split(",") if a.strip())
    opt.check_sampling_arguments(args)
    opt.check_fit_arguments(args)
    opt.check_runtime_arguments(args)
    hint = "give smaller --dims, fewer --archs, or narrower architectures (e.g. resnet:width=8)"
    config = CompareConfig(
        archs,
        tuple(dims),
        draws=args.draws,
        batch=args.batch,
        seed=args.seed,
        eps_inf=args.eps_inf,
        margin=args.margin,
        n_boot=args.n_boot,
        preflight=lambda plan: opt.check_memory(args, plan, hint=hint),
    )
    # every architecture's plan before any computation
    plan = memory.compare_plan(
        list(zip(config.labels, config.specs)), draws=config.draws, batch=config.batch, n_boot=config.n_boot
    )
    opt.check_memory(args, plan, hint=f"{hint}, or fewer --draws")
    return opt.execute(args, config, check_compare, render_compare, timer)
