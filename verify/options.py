"""Command-line options shared by the commands, and their validation (one-line InputErrors)."""

from __future__ import annotations

import argparse
import math

from graphs.errors import InputError
from graphs.spec import FAMILIES, PADDINGS, Spec, build_spec, parse_dims

__all__ = [
    "add_arch_arguments",
    "add_fit_arguments",
    "add_output_arguments",
    "add_sampling_arguments",
    "check_fit_arguments",
    "check_sampling_arguments",
    "int_tuple",
    "parse_dims",
    "positive_int",
    "spec_options",
    "specs_from_args",
]


def int_tuple(text: str, name: str) -> tuple[int, ...]:
    """Parse ``"1,2,2"`` for option ``name``; a one-line InputError names the bad part."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise InputError(f"{name}: {part!r} is not an integer; give a comma-separated list like 1,2,2") from None
        if value < 1:
            raise InputError(f"{name}: {value} is not positive; give positive integers")
        out.append(value)
    return tuple(out)


def add_arch_arguments(parser: argparse.ArgumentParser, *, default_arch: str | None = None) -> None:
    """--arch and the family options (each applies to the families named in its help)."""
    g = parser.add_argument_group("architecture")
    g.add_argument(
        "--arch",
        required=default_arch is None,
        default=default_arch,
        metavar="FAMILY",
        help=f"architecture family: {', '.join(FAMILIES)}",
    )
    g.add_argument("--padding", choices=PADDINGS, default=None, help="conv padding mode (CNNs; default zeros)")
    g.add_argument("--channels", type=int, default=None, help="conv channels (CNNs; default 64)")
    g.add_argument("--strides", default=None, help="conv strides, comma-separated (CNNs; default 1,2,2,2,2,2)")
    g.add_argument("--kernel", type=int, default=None, help="conv kernel side, odd (CNNs; default 3)")
    g.add_argument("--pool-windows", default=None, help="pooling windows in order (avgpool-cnn; default each stride)")
    g.add_argument("--widths", default=None, help="hidden widths (dense; default 256,256)")
    g.add_argument("--hidden", default=None, help="hidden widths (random-dag; default 64,64,64)")
    g.add_argument("--max-in-degree", type=int, default=None, help="largest in-degree (random-dag; default 8)")
    g.add_argument("--skip-prob", type=float, default=None, help="chance an edge skips layers (random-dag; default 0.25)")
    g.add_argument("--dag-seed", type=int, default=None, help="seed of the DAG structure (random-dag; default 0)")
    g.add_argument("--classes", type=int, default=None, help="number of logits K (default 10)")


def spec_options(args: argparse.Namespace) -> dict:
    """The family options given on the command line, as keyword arguments of ``build_spec``."""
    arch = args.arch
    if arch not in FAMILIES:
        raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(FAMILIES)}")
    opts: dict = {"num_classes": args.classes}
    cnn = arch in ("strided-cnn", "avgpool-cnn")
    wrong = []
    for flag, value, ok in [
        ("--padding", args.padding, cnn),
        ("--channels", args.channels, cnn),
        ("--strides", args.strides, cnn),
        ("--kernel", args.kernel, cnn),
        ("--pool-windows", args.pool_windows, arch == "avgpool-cnn"),
        ("--widths", args.widths, arch == "dense"),
        ("--hidden", args.hidden, arch == "random-dag"),
        ("--max-in-degree", args.max_in_degree, arch == "random-dag"),
        ("--skip-prob", args.skip_prob, arch == "random-dag"),
        ("--dag-seed", args.dag_seed, arch == "random-dag"),
    ]:
        if value is not None and not ok:
            wrong.append(flag)
    if wrong:
        raise InputError(f"{', '.join(wrong)} do(es) not apply to --arch {arch}; drop it or pick another family")
    if cnn:
        opts.update(padding=args.padding, channels=args.channels, kernel=args.kernel)
        if args.strides is not None:
            opts["strides"] = int_tuple(args.strides, "--strides")
        if args.pool_windows is not None:
            opts["pools"] = int_tuple(args.pool_windows, "--pool-windows")
    elif arch == "dense":
        if args.widths is not None:
            opts["widths"] = int_tuple(args.widths, "--widths")
    else:
        opts.update(max_in_degree=args.max_in_degree, skip_prob=args.skip_prob, seed=args.dag_seed)
        if args.hidden is not None:
            opts["hidden"] = int_tuple(args.hidden, "--hidden")
    return opts


def specs_from_args(args: argparse.Namespace, dims: list[int] | None = None) -> list[Spec]:
    """One spec per size in ``--dims`` (or ``dims``); every one is validated before any work."""
    if dims is None:
        dims = parse_dims(args.dims)
    opts = spec_options(args)
    return [build_spec(args.arch, n, **opts) for n in dims]


def positive_int(name: str, value: int, least: int = 1, why: str = "") -> int:
    """``value`` if it is at least ``least``, else a one-line InputError naming ``name``."""
    if value < least:
        raise InputError(f"{name}: {value} is too small{why}; give an integer >= {least}")
    return value


def add_sampling_arguments(parser: argparse.ArgumentParser, *, samples: int, batch: int, device: str = "auto") -> None:
    """--samples (weight draws), --batch (inputs per draw), --seed and --device."""
    g = parser.add_argument_group("sampling")
    g.add_argument("--samples", type=int, default=samples, help=f"He weight draws per net, >= 2 (default {samples}; sets the CI width)")
    g.add_argument("--batch", type=int, default=batch, help=f"inputs per weight draw (default {batch})")
    g.add_argument("--seed", type=int, default=0, help="seed of the run: draw i uses (seed, i) (default 0)")
    g.add_argument(
        "--device", default=device, choices=("auto", "cpu", "cuda"), help=f"auto takes CUDA when available (default {device})"
    )


def check_sampling_arguments(args: argparse.Namespace) -> None:
    positive_int("--samples", args.samples, 2, " (a CI needs spread between weight draws)")
    positive_int("--batch", args.batch, 1)
    # generator_for feeds the seed to numpy's SeedSequence, which rejects negative integers.
    if args.seed < 0:
        raise InputError(f"--seed: {args.seed} is negative; give an integer >= 0")


def add_fit_arguments(parser: argparse.ArgumentParser, *, what: str = "the predicted slope") -> None:
    """--margin (the verdict band) and --n-boot (bootstrap resamples)."""
    g = parser.add_argument_group("fit")
    g.add_argument("--margin", type=float, default=0.05, help=f"half-width of the band around {what} (default 0.05)")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over weight draws (default 2000)")


def check_fit_arguments(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.margin) and args.margin > 0):
        raise InputError(f"--margin: {args.margin} is not positive; give e.g. --margin 0.05")
    positive_int("--n-boot", args.n_boot, 100, " for a 95% interval")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and --out-dir."""
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object to stdout (the report is still written)")
    g.add_argument("--out-dir", default="reports", help="report folder (default reports)")
