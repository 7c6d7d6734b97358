"""Command-line options shared by the commands, generated where they can be, and validated.

Family flags are generated from the families' declarations (``graphs.families``): each flag
appears once, in a help group naming the families it applies to, with the family's own
default. Sampling, fit and output flags are the same words in every command:

- ``--draws N``: He weight draws per net (the independent unit of every interval); the old
  spelling ``--samples`` still works;
- ``--batch N``: inputs per weight draw;
- ``--dims``: the sizes, always a comma-separated list (``--dim`` still works where a
  command takes one size).

Every check is one line on bad input: ``InputError`` with the problem and the fix.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any, Sequence

from graphs.errors import InputError
from graphs.families import FAMILIES, Family, Option, family, parse_option

__all__ = [
    "ArgumentParser",
    "Timer",
    "add_arch_arguments",
    "add_fit_arguments",
    "add_output_arguments",
    "add_runtime_arguments",
    "add_sampling_arguments",
    "check_fit_arguments",
    "check_sampling_arguments",
    "family_options",
    "parse_dims",
    "positive_int",
    "run_info",
    "specs_from_args",
]


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one ``InputError`` line instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise InputError(f"{self.prog}: {message}; see {self.prog} --help")


def _dest(opt: Option) -> str:
    # Family options live under their own prefix: random-dag's structure seed must not
    # overwrite the run's --seed.
    return f"family_{opt.name}"


def _flag_table() -> dict[str, tuple[Option, list[str]]]:
    """Each family flag once, with the families that declare it (declaration order)."""
    table: dict[str, tuple[Option, list[str]]] = {}
    for name, fam in FAMILIES.items():
        for opt in fam.options:
            if opt.flag in table:
                table[opt.flag][1].append(name)
            else:
                table[opt.flag] = (opt, [name])
    return table


def add_arch_arguments(
    parser: argparse.ArgumentParser,
    *,
    default_arch: str | None = None,
    families: Sequence[str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> None:
    """``--arch`` and every family flag, grouped by the families each applies to.

    ``families`` restricts the choices (a command defined for one family only);
    ``defaults`` overrides a family default for this command (by builder keyword), and the
    help says so.
    """
    allowed = list(families) if families is not None else list(FAMILIES)
    defaults = defaults or {}
    g = parser.add_argument_group("architecture")
    g.add_argument(
        "--arch",
        required=default_arch is None,
        default=default_arch,
        metavar="FAMILY",
        help="architecture family: "
        + "; ".join(f"{n} ({FAMILIES[n].summary}; --dims gives the {FAMILIES[n].size})" for n in allowed),
    )
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    for flag, (opt, fams) in _flag_table().items():
        fams = [f for f in fams if f in allowed]
        if not fams:
            continue
        key = tuple(fams)
        if key not in groups:
            title = (
                "options of every family"
                if len(fams) == len(allowed) and len(allowed) > 1
                else f"options of {', '.join(fams)}"
            )
            groups[key] = parser.add_argument_group(title)
        default = defaults.get(opt.name, opt.default)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        extra = f" (default {shown})" if default is not None else ""
        choices = f"; one of {', '.join(opt.choices)}" if opt.choices else ""
        groups[key].add_argument(
            flag,
            dest=_dest(opt),
            default=None,
            metavar=opt.kind.upper() if opt.kind != "choice" else "MODE",
            help=f"{opt.help}{choices}{extra}",
        )
    parser.set_defaults(_family_defaults=defaults)


def family_options(args: argparse.Namespace) -> dict[str, Any]:
    """The family options given on the command line, parsed, as builder keywords.

    A flag of another family is an error naming it (it would otherwise be ignored silently).
    Command-level default overrides apply where the flag is absent.
    """
    fam: Family = family(args.arch)
    own = {o.name for o in fam.options}
    wrong = []
    for flag, (opt, _) in _flag_table().items():
        value = getattr(args, _dest(opt), None)
        if value is not None and opt.name not in own:
            wrong.append(flag)
    if wrong:
        raise InputError(
            f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to --arch {args.arch}; drop it or pick another family"
        )
    opts: dict[str, Any] = {}
    overrides = getattr(args, "_family_defaults", {}) or {}
    for opt in fam.options:
        value = getattr(args, _dest(opt), None)
        if value is not None:
            opts[opt.name] = parse_option(opt, value)
        elif opt.name in overrides:
            opts[opt.name] = overrides[opt.name]
    return opts


def parse_dims(text: str, *, at_least: int = 1, flag: str = "--dims") -> list[int]:
    """``"32,64,128"`` -> distinct positive integers, in the given order."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    dims: list[int] = []
    for p in parts:
        try:
            value = int(p)
        except ValueError:
            raise InputError(f"{flag}: {p!r} is not an integer; give sizes like {flag} 32,64,128") from None
        if value < 1:
            raise InputError(f"{flag}: {value} is not positive; give sizes like {flag} 32,64,128")
        dims.append(value)
    if len(set(dims)) != len(dims):
        raise InputError(f"{flag}: sizes must be distinct, got {text}")
    if len(dims) < at_least:
        raise InputError(f"{flag}: give at least {at_least} size(s), got {len(dims)}; e.g. {flag} 32,64,128")
    return dims


def specs_from_args(args: argparse.Namespace, dims: Sequence[int]) -> list:
    """One spec per size; every one is built (hence validated) before any work."""
    from graphs.spec import build_spec

    opts = family_options(args)
    return [build_spec(args.arch, n, **opts) for n in dims]


def positive_int(flag: str, value: int, least: int = 1, why: str = "") -> int:
    """``value`` if it is at least ``least``, else a one-line InputError naming ``flag``."""
    if value < least:
        raise InputError(f"{flag}: {value} is too small{why}; give an integer >= {least}")
    return value


def add_sampling_arguments(parser: argparse.ArgumentParser, *, draws: int, batch: int) -> None:
    """--draws (alias --samples), --batch and --seed."""
    g = parser.add_argument_group("sampling")
    g.add_argument(
        "--draws",
        "--samples",
        dest="draws",
        type=int,
        default=draws,
        metavar="N",
        help=f"He weight draws per net, >= 2 (default {draws}); every interval is over draws ('--samples' is the old name)",
    )
    g.add_argument("--batch", type=int, default=batch, metavar="N", help=f"inputs per weight draw (default {batch})")
    g.add_argument("--seed", type=int, default=0, help="seed of the run: draw i uses the streams (seed, i) (default 0)")


def add_runtime_arguments(
    parser: argparse.ArgumentParser, *, threads: int | None = None, precision: bool = False
) -> None:
    """--device and --threads (and --precision where the command's nets run in the engine)."""
    from verify.settings import DEVICES, PRECISIONS

    g = parser.add_argument_group("runtime")
    g.add_argument("--device", default="auto", choices=DEVICES, help="auto takes CUDA when available (default auto)")
    if precision:
        g.add_argument(
            "--precision",
            default="fp32",
            choices=PRECISIONS,
            help="fp32: float32 with TF32 off (default); tf32: TF32 convolutions and matmuls on GPUs that have them; "
            "bf16: bfloat16 nets. The report states the measured per-sample error against float64",
        )
    g.add_argument(
        "--threads",
        type=int,
        default=threads,
        metavar="N",
        help="torch CPU threads (default: one thread for small draws, all for large ones)"
        if threads is None
        else f"torch CPU threads (default {threads})",
    )


def check_sampling_arguments(args: argparse.Namespace) -> None:
    from graphs.rng import check_seed

    positive_int("--draws", args.draws, 2, " (an interval needs spread between weight draws)")
    positive_int("--batch", args.batch, 1)
    check_seed(args.seed)


def add_fit_arguments(
    parser: argparse.ArgumentParser, *, what: str = "the predicted slope", margin: float = 0.05
) -> None:
    """--margin (the verdict band) and --n-boot (bootstrap resamples)."""
    g = parser.add_argument_group("fit")
    g.add_argument(
        "--margin", type=float, default=margin, help=f"half-width of the band around {what} (default {margin:g})"
    )
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over weight draws (default 2000)")


def check_fit_arguments(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.margin) and args.margin > 0):
        raise InputError(f"--margin: {args.margin} is not positive; give e.g. --margin 0.05")
    positive_int("--n-boot", args.n_boot, 100, " for a 95% interval")
    if args.n_boot > 1_000_000:
        raise InputError(
            f"--n-boot: {args.n_boot} resamples would not fit in memory; give at most 1000000 (2000 is plenty)"
        )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and --out-dir."""
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object to stdout (the report is still written)")
    g.add_argument(
        "--out-dir", default="reports", help="report folder (default reports; created when the report is written)"
    )


class Timer:
    """Wall time of a run, started when the command starts."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def run_info(
    args: argparse.Namespace, rt, timer: Timer, *, dtype: str = "float32", settings: dict[str, Any] | None = None
):
    """The ``RunInfo`` of a command: its command line, seed, runtime, versions and settings."""
    import torch

    from verify.report.writer import library_versions
    from verify.results import RunInfo

    device = rt.description if rt is not None else "cpu"
    return RunInfo(
        command=getattr(args, "command_line", "verify"),
        seed=getattr(args, "seed", None),
        device=device,
        threads=torch.get_num_threads() if rt is None else rt.default_threads if rt.threads is None else rt.threads,
        dtype=dtype,
        versions=library_versions(),
        wall_seconds=timer.seconds,
        settings=dict(settings or {}),
    )
