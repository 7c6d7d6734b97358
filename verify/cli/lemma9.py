"""``verify lemma9`` (alias ``moments``): Lemma 9 by Monte Carlo, and the exact (H) second moments of Eq. 13."""

from __future__ import annotations

import argparse

from graphs.errors import InputError
from verify.cli import options as opt
from verify.cli import storage

HELP = "Lemma 9: path products of distinct paths are uncorrelated (Monte Carlo + Holm); Eq. 13 exactly"

EPILOG = """\
examples:
  verify lemma9 --arch random-dag --dims 6
  verify lemma9 --arch random-dag --dims 6 --init shared          # must be inconsistent (H4 broken)
  verify lemma9 --arch random-dag --dims 6,8 --hidden 16,16 --draws 8000 --json
  verify lemma9 --arch avgpool-cnn --dims 4 --channels 2 --strides 1,2 --padding circular
  verify moments --arch random-dag --dims 6                        # the old name of this command

Per size: t-test E[w_p] = 0 per sampled path and E[w_p w_p'] = 0 per pair of distinct paths from
one input over DRAWS weight draws, Holm-corrected together: 'consistent' when no test rejects at
family-wise level ALPHA. --init shared plants a correlation between two layers (H4 fails): the
verdict must be 'inconsistent'. Also Eq. 13's E||d_x f_k||_2^2 by DP (exact fractions) against
the operator form, and the engine's Monte Carlo against it. Report: OUT_DIR/lemma9-ARCH[-shared].md.
"""

# (flag, old spelling...), type, default, help
NUMBERS = (
    (("--draws", "--samples"), int, 4000, "weight draws per size"),
    (("--seed",), int, 0, "seed of the weight draws and of the path sampling"),
    (("--rho",), float, 0.9, "share of variance the shared layers have in common"),
    (("--max-inputs",), int, 4, "inputs whose paths are tested"),
    (("--max-paths",), int, 60, "paths sampled per input"),
    (("--max-pairs",), int, 1500, "pairs tested in all, split over the inputs"),
    (("--mc-draws", "--mc-samples"), int, 400, "engine draws for Monte Carlo E||d_x f_c||^2 against Eq. 13 (0: skip)"),
    (("--alpha",), float, 0.05, "family-wise level of the Holm-corrected tests"),
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "lemma9",
        aliases=["moments"],
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_arch_arguments(p, model=False)  # its own --init (he or shared) and small DAGs only
    p.add_argument("--dims", default="6", help="input sizes, comma-separated (small: the DAG is built; default 6)")
    p.add_argument("--init", choices=("he", "shared"), default="he", help="he (H holds) or shared (planted H4 failure)")
    p.add_argument("--shared-layers", help="two layers sharing a component (--init shared; default the first two)")
    for flags, kind, default, what in NUMBERS:
        dest = flags[0][2:].replace("-", "_")
        p.add_argument(*flags, dest=dest, type=kind, default=default, help=f"{what} (default {default:g})")
    opt.add_runtime_arguments(p)
    opt.add_output_arguments(p)
    storage.add_store_arguments(p)
    p.set_defaults(func=run)
    return p


def _layers(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--shared-layers {text!r}: give two layer numbers, like 1,2") from None


def run(args: argparse.Namespace) -> int:
    from verify import memory
    from verify.checks.lemma9 import MC_BATCH, Lemma9Config, check_lemma9
    from verify.report.lemma9 import render_lemma9

    timer = opt.Timer()
    dims = opt.parse_dims(args.dims)
    opt.check_runtime_arguments(args)
    specs = opt.specs_from_args(args, dims)
    # Before the config: it counts each net's edges through its in-degree maps.
    plan = memory.lemma9_plan(
        specs,
        draws=args.draws,
        max_inputs=args.max_inputs,
        max_paths=args.max_paths,
        max_pairs=args.max_pairs,
        mc_draws=args.mc_draws,
        mc_batch=MC_BATCH,
        labels=[opt.size_label(args, s.dim) for s in specs],
    )
    opt.check_memory(args, plan, hint="give smaller --dims, fewer --draws, --max-paths or --max-pairs")
    names = ("draws", "seed", "init", "rho", "max_inputs", "max_paths", "max_pairs", "alpha", "mc_draws")
    config = Lemma9Config(
        tuple(specs), shared_layers=_layers(args.shared_layers), **{k: getattr(args, k) for k in names}
    )
    return opt.execute(
        args, config, check_lemma9, render_lemma9, timer, dtype="float64 (Lemma 9), float32 (engine)", store="lemma9"
    )
