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
import time
from typing import Any, Sequence

from graphs.errors import InputError
from graphs.families import FAMILIES, Family, Option, family, parse_option

__all__ = [
    "ArgumentParser",
    "Timer",
    "add_arch_arguments",
    "add_fit_arguments",
    "add_memory_argument",
    "add_output_arguments",
    "add_runtime_arguments",
    "add_sampling_arguments",
    "check_fit_arguments",
    "check_memory",
    "check_runtime_arguments",
    "check_sampling_arguments",
    "family_options",
    "memory_hint",
    "memory_limit",
    "parse_dims",
    "positive_int",
    "run_info",
    "size_label",
    "specs_from_args",
    "user_model",
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
    model: bool | None = None,
    model_input: str = "3 x n x n",
    model_mode: bool = True,
) -> None:
    """``--arch`` and every family flag, grouped by the families each applies to, and (unless
    ``model`` is False; by default where every family is allowed) ``--model`` with its flags.
    ``model_input`` is the image a module takes (in --help), ``model_mode`` False leaves out
    ``--mode`` (a command that sets the module's mode itself).

    ``families`` restricts the choices (a command defined for one family only);
    ``defaults`` overrides a family default for this command (by builder keyword), and the
    help says so.
    """
    allowed = list(families) if families is not None else list(FAMILIES)
    defaults = defaults or {}
    if model is None:
        model = families is None
    g = parser.add_argument_group("architecture")
    g.add_argument(
        "--arch",
        required=default_arch is None and not model,
        default=default_arch,
        metavar="FAMILY",
        help="architecture family: "
        + "; ".join(f"{n} ({FAMILIES[n].summary}; --dims gives the {FAMILIES[n].size})" for n in allowed),
    )
    if model:
        _add_model_arguments(parser, model_input, mode=model_mode)
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    table = [(flag, opt, [f for f in fams if f in allowed]) for flag, (opt, fams) in _flag_table().items()]
    # The options every family shares come first, then each family's own, in declaration order.
    table.sort(key=lambda row: len(row[2]) != len(allowed))
    for flag, opt, fams in table:
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


def _add_model_arguments(parser: argparse.ArgumentParser, image: str = "3 x n x n", *, mode: bool = True) -> None:
    """``--model`` and its flags (``verify.usermodel``)."""
    g = parser.add_argument_group(
        "your own module (instead of --arch; the file is executed because you name it)",
    )
    g.add_argument(
        "--model",
        metavar="FILE.py:FACTORY",
        help=f"FACTORY(n) returns an nn.Module for input {image} (or FACTORY(d) for vectors: --input-shape vector); "
        "also package.module:FACTORY",
    )
    g.add_argument(
        "--input-shape",
        default="image",
        choices=("image", "vector"),
        help=f"image: {image} inputs, --dims gives n; vector: d inputs, --dims gives d (default image)",
    )
    g.add_argument(
        "--init",
        default="he",
        choices=("he", "keep"),
        help="he: every conv and linear weight re-drawn N(0, 2/fan-in) per draw, biases 0 (the theorems' setting); "
        "keep: the module's own initialisation, or the checkpoint of --weights (default he)",
    )
    g.add_argument(
        "--weights",
        metavar="FILE",
        help="checkpoint for --init keep: a .safetensors file or a state dict torch.load(weights_only=True) reads",
    )
    if not mode:
        # kept out of --help but parsed, so that --mode is refused by name (not abbreviated to --model)
        g.add_argument("--mode", default=None, help=argparse.SUPPRESS)
        return
    g.add_argument(
        "--mode",
        default="eval",
        choices=("eval", "train"),
        help="the module's mode: eval (running batch-norm statistics) or train (batch statistics) (default eval)",
    )


def user_model(args: argparse.Namespace, *, in_channels: int = 3):
    """The ``verify.usermodel.UserModel`` of ``--model`` (None without it), for inputs of
    ``in_channels`` channels; refuses --arch and family flags with it."""
    ref = getattr(args, "model", None)
    if ref is None:
        if getattr(args, "arch", None) is None:
            raise InputError("give --arch FAMILY or --model FILE.py:FACTORY; see --help")
        return None
    if getattr(args, "arch", None) is not None:
        raise InputError("--arch and --model both given; give one of them")
    given = [flag for flag, (opt, _) in _flag_table().items() if getattr(args, _dest(opt), None) is not None]
    if given:
        raise InputError(
            f"{', '.join(given)} set options of a family; --model takes the module as its factory builds it"
        )
    from verify.usermodel import UserModel

    return UserModel(
        ref,
        input_shape=args.input_shape,
        init=args.init,
        weights=args.weights,
        mode=getattr(args, "mode", None) or "eval",
        in_channels=in_channels,
    )


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


def specs_from_args(args: argparse.Namespace, dims: Sequence[int], *, flag: str = "--dims") -> list:
    """One spec per size; every one is built (hence validated) before any work. With ``--model``,
    the user's module at each size (``verify.usermodel.model_specs``); a family whose building
    itself allocates (a random DAG's masks) is checked against the memory first."""
    from graphs.spec import build_spec
    from verify import memory

    model = user_model(args)
    if model is not None:
        from verify.usermodel import model_specs

        # each size's building is checked against the memory before the factory allocates it
        hint = memory_hint(args, flag=flag)
        return model_specs(model, list(dims), preflight=lambda plan: check_memory(args, plan, hint=hint))
    opts = family_options(args)
    specs = []
    for n in dims:
        if args.arch == "random-dag":
            need = memory.random_dag_build(n, opts, size_label(args, n, flag))
            check_memory(args, memory.Plan((need,)), hint=f"give smaller {flag} or --hidden")
        specs.append(build_spec(args.arch, n, **opts))
    return specs


def size_label(args: argparse.Namespace, dim: int | str, flag: str = "--dims") -> str:
    """A size in command-line words: ``--dims 4096`` and the family flags given with it
    (``--channels 100000``), so a refusal names what to change."""
    words = [f"{flag} {dim}"]
    for opt_flag, (opt, _) in _flag_table().items():
        value = getattr(args, _dest(opt), None)
        if value is not None:
            words.append(f"{opt_flag} {value}")
    return " ".join(words)


# The options that set how large a family's net is: what a memory refusal asks to make smaller.
_SIZE_OPTIONS = ("widths", "channels", "hidden", "width", "blocks", "embed_dim", "depth", "mlp_ratio")


def memory_hint(args: argparse.Namespace, *, flag: str = "--dims", more: str = "") -> str:
    """What to change when a run does not fit: smaller sizes and the flags that size this
    family's net (a smaller module for ``--model``), then ``more`` (``", or fewer --draws"``)."""
    arch = getattr(args, "arch", None)
    if getattr(args, "model", None) is not None or arch not in FAMILIES:
        return f"give smaller {flag}, or a smaller module{more}"
    flags = [o.flag for o in FAMILIES[arch].options if o.name in _SIZE_OPTIONS]
    return f"give smaller {' or '.join([flag, ', '.join(flags)] if flags else [flag])}{more}"


def add_memory_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--max-memory: the memory a run may use (default: what the machine has available)."""
    parser.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="refuse a run whose estimated peak memory (the whole process) exceeds SIZE, e.g. 64G "
        "(default: the memory available now; verify/memory.py says how it is estimated)",
    )


def memory_limit(args: argparse.Namespace) -> int | None:
    """``--max-memory`` in bytes (None: what the machine has); a one-line InputError otherwise."""
    from verify.memory import parse_bytes

    text = getattr(args, "max_memory", None)
    return None if text is None else parse_bytes(text)


def check_memory(args: argparse.Namespace, plan, *, hint: str = "give smaller --dims") -> None:
    """Refuse ``plan`` (a ``verify.memory.Plan``) in one line when it cannot fit: on the host,
    and on the GPU where the command's ``--device`` resolves to CUDA."""
    from verify import memory

    limit = memory_limit(args)
    on_device, device_limit = False, None
    if getattr(args, "device", "cpu") in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            on_device = True
            device_limit = limit if limit is not None else int(torch.cuda.mem_get_info()[0])
    memory.check_plan(plan, limit=limit, on_device=on_device, device_limit=device_limit, hint=hint)


def check_runtime_arguments(args: argparse.Namespace) -> None:
    """--threads within what the machine can run, --max-memory a size (before any work)."""
    import os

    threads = getattr(args, "threads", None)
    if threads is not None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if threads < 1:
            raise InputError(f"--threads: {threads} is not positive; give e.g. --threads 1")
        if threads > 4 * cores:
            raise InputError(
                f"--threads: {threads} threads on {cores} core(s) would only contend; give at most --threads {4 * cores}"
            )
    memory_limit(args)


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
    """--device, --threads and --max-memory (and --precision where the command's nets run in the engine)."""
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
    add_memory_argument(g)


def check_sampling_arguments(args: argparse.Namespace) -> None:
    """The config checks these too; checking them here first keeps the order of errors stable."""
    from verify.checks.common import check_sampling

    check_sampling(args.draws, args.batch, args.seed)


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
    from verify.checks.common import check_fit

    check_fit(args.margin, args.n_boot)


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


def execute(
    args: argparse.Namespace,
    config: Any,
    check: Any,
    render: Any,
    timer: Timer,
    *,
    dtype: str = "float32",
    device: str | None = None,
    takes_runtime: bool = True,
    store: str | None = None,
    precision: str | None = None,
) -> int:
    """The common tail of every command: check the output folder, run ``check(config)`` under
    the runtime, render the result with its ``RunInfo``, write the report files together,
    then print the JSON object (``--json``) or the terminal summary.

    ``device`` overrides ``--device`` (a check that must run on the CPU); ``takes_runtime``
    is False for a check without a Monte Carlo (it gets no ``rt`` argument); ``store`` names
    the command whose Monte Carlo records into the results store (``verify.cli.storage``);
    ``precision`` (``--precision``) sets the nets' arithmetic, which then names the dtype and
    joins the settings (it changes the numbers).
    """
    import contextlib
    import dataclasses

    from verify.cli import storage
    from verify.montecarlo import show_progress
    from verify.progress import Progress
    from verify.report import check_out_dir, json_text, write_rendered
    from verify.runtime import runtime

    out_dir = check_out_dir(args.out_dir)
    progress = Progress(f"verify {args.command}", show_progress(args.json))
    recording = (
        storage.recording(args, store, settings=config.settings()) if store is not None else contextlib.nullcontext()
    )
    where = device or getattr(args, "device", "cpu")
    threads = getattr(args, "threads", None)
    settings = config.settings() if precision is None else {**config.settings(), "precision": precision}
    with (
        runtime(where, threads=threads, precision=precision or "fp32") as rt,
        recording as stored,
    ):
        result = check(config, rt=rt, progress=progress) if takes_runtime else check(config, progress=progress)
        if precision is not None:
            dtype = str(rt.compute_dtype()).removeprefix("torch.")
        info = run_info(args, rt, timer, dtype=dtype, settings=settings)
        if store is not None:
            info = dataclasses.replace(info, wall_note=storage.reuse_note(stored))
    with progress.phase("report and plots"):
        rendered = render(result, info)
        paths = write_rendered(out_dir, rendered)
    if args.json:
        print(json_text(rendered.json))
    else:
        print(rendered.summary)
        print("report: " + "  ".join(str(p) for p in paths))
        if store is not None:
            print(storage.store_line(stored))
        print(f"wall time: {timer.seconds:.1f} s")
    return 0
