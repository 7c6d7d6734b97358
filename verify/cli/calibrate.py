"""``verify calibrate``: coverage of the intervals and detection of planted violations, over many seeds."""

from __future__ import annotations

import argparse

from verify.cli import options as opt

HELP = "coverage of the 95%% intervals and false verdicts on exact truths; detection of planted violations"

EPILOG = """\
examples:
  verify calibrate                                                  # the committed report, ~10 minutes on 2 cores
  verify calibrate --seeds 4 --pooled-seeds 2 --planted-seeds 2 --lemma9-seeds 2   # a smoke run, about 20 s
  verify calibrate --cases dense-mean,dense-slope --seeds 500 --json
  verify calibrate --cases variance-grows,fan-in-miscounted,shared-layers --planted-seeds 50

Coverage cases (truth exact; every 'inconsistent' verdict is a false one):
  dense-mean        per-size 95% interval of E||d_x f_c||_2^2 on dense nets (truth 2, exactly)
  dense-slope       95% interval of the slope of log E||d_x f_c||_2^2 against log d (truth 0)
  dense-asymptotic  95% interval of beta in the finite-size fit (truth 0)
  pooled-slope      the same slope on avgpool-cnn, circular padding, (S) exact (truth 0, by translation)
  pooled-coord      slope of log E mean|(d_x f_c)_i| on that net (truth -1/2, by translation)
  lemma9            Lemma 9's Holm family under He initialisation (true: rejects at most alpha)
Planted violations (must be flagged in every seed):
  variance-grows    first layer drawn with variance 2/isqrt(d): the slope of E||d_x f_c||^2 against 0
  fan-in-miscounted first layer divides by d/3: Monte Carlo against Eq. 13 (2/in-degree)
  shared-layers     two layers of a random DAG share a Gaussian component: Lemma 9's tests

Seed s runs the whole check with the streams (s, i); a rate's interval is Clopper-Pearson.
Goal: coverage within [0.92, 0.98], false 'inconsistent' below (1 - 0.95)/2, detection 1.
Report: OUT_DIR/calibrate.md and calibrate.png.
"""

# (flag, type, default, help)
NUMBERS = (
    ("--seeds", int, 250, "seeds (replications) of the dense coverage cases"),
    ("--pooled-seeds", int, 80, "seeds of the pooled coverage cases"),
    ("--planted-seeds", int, 20, "seeds per planted violation"),
    ("--lemma9-seeds", int, 40, "seeds of Lemma 9 under He initialisation"),
    ("--seed", int, 0, "first seed; the others follow"),
    ("--draws", int, 100, "weight draws per size in each replication"),
    ("--batch", int, 2, "inputs per weight draw"),
    ("--pooled-channels", int, 4, "channels of the pooled nets"),
    ("--lemma9-draws", int, 1000, "weight draws of each Lemma 9 run"),
    ("--alpha", float, 0.05, "family-wise level of Lemma 9's tests"),
)
LISTS = (
    ("--cases", "cases", None, "comma-separated subset of the cases below (default all)"),
    (
        "--dense-dims",
        "dense_dims",
        "32,64,128,256,512",
        "input dimensions of the dense nets (5 for the finite-size fit)",
    ),
    ("--dense-widths", "dense_widths", "32,32", "hidden widths of the dense nets"),
    ("--pooled-dims", "pooled_dims", "24,32,48,64", "image sides of the pooled nets (>= 2x the receptive field)"),
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "calibrate",
        help=HELP,
        description=(
            "Repeat the statistics of the checks over many seeds on nets whose truth is exact, report the coverage "
            "of the 95% intervals and the rate of false 'inconsistent' verdicts, and the detection rate of planted "
            "violations."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, kind, default, what in NUMBERS:
        p.add_argument(flag, type=kind, default=default, help=f"{what} (default {default:g})")
    for flag, dest, default, what in LISTS:
        p.add_argument(flag, dest=dest, default=default, help=what + (f" (default {default})" if default else ""))
    opt.add_fit_arguments(p, what="the truth")
    opt.add_runtime_arguments(p)
    opt.add_output_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from graphs.families import int_tuple
    from graphs.spec import build_spec
    from verify import memory
    from verify.checks.calibrate import (
        COVERAGE_CASES,
        PLANTED_CASES,
        CalibrateConfig,
        check_calibrate,
        dense_nets,
        pooled_nets,
    )
    from verify.checks.lemma9 import Lemma9Config
    from verify.report.calibrate import render_calibrate

    timer = opt.Timer()
    opt.check_fit_arguments(args)
    opt.check_runtime_arguments(args)
    cases = (
        tuple(c.strip() for c in args.cases.split(",") if c.strip())
        if args.cases is not None
        else (*COVERAGE_CASES, *PLANTED_CASES)
    )
    config = CalibrateConfig(
        seeds=args.seeds,
        pooled_seeds=args.pooled_seeds,
        planted_seeds=args.planted_seeds,
        lemma9_seeds=args.lemma9_seeds,
        first_seed=args.seed,
        draws=args.draws,
        batch=args.batch,
        dense_dims=int_tuple(args.dense_dims, "--dense-dims"),
        dense_widths=int_tuple(args.dense_widths, "--dense-widths"),
        pooled_dims=int_tuple(args.pooled_dims, "--pooled-dims"),
        pooled_channels=args.pooled_channels,
        lemma9_draws=args.lemma9_draws,
        cases=cases,
        margin=args.margin,
        alpha=args.alpha,
        n_boot=args.n_boot,
    )
    dense = any(c.startswith(("dense", "variance", "fan-in")) for c in config.cases)
    pooled = any(c.startswith("pooled") for c in config.cases)
    lemma9 = any(c in ("lemma9", "shared-layers") for c in config.cases)
    limits = Lemma9Config.__dataclass_fields__
    plan = memory.calibrate_plan(
        dense_nets(config.dense_dims, config.dense_widths) if dense else (),
        pooled_nets(config.pooled_dims, config.pooled_channels) if pooled else (),
        [build_spec("random-dag", config.lemma9_dim, hidden=config.lemma9_hidden)] if lemma9 else (),
        draws=config.draws,
        batch=config.batch,
        n_boot=config.n_boot,
        lemma9_draws=config.lemma9_draws,
        lemma9_limits=(limits["max_inputs"].default, limits["max_paths"].default, limits["max_pairs"].default),
    )
    hint = "give smaller --dense-dims, --dense-widths, --pooled-dims or --pooled-channels, or fewer --draws or --lemma9-draws"
    opt.check_memory(args, plan, hint=hint)
    return opt.execute(args, config, check_calibrate, render_calibrate, timer)
