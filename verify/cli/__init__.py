"""The ``verify`` command: ``main(argv=None) -> int``, one thin module per sub-command.

Each sub-command module defines ``add_parser(subparsers)`` (whose defaults set ``func``) and
``run(args) -> int``, and does only this: parse, build a config, call the check function,
render the result, write it. Modules import torch and the checks inside ``run`` so that
``verify --help`` stays fast.

Bad input anywhere (argparse, spec building, the file system) ends in one line on stderr and
exit status 2, with nothing written. So does a ``graphs`` or ``verify`` of the user's that
shadows the toolkit's (``verify.installation``): this module imports neither ``graphs`` nor
the commands before checking, so that check can speak.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import signal
import sys
import threading
from typing import TYPE_CHECKING, Iterator, Sequence

from verify.installation import installation_problem
from verify.version import __version__

if TYPE_CHECKING:
    from verify.cli.options import ArgumentParser

__all__ = ["COMMANDS", "Terminated", "build_parser", "entry_point", "main"]

# command name -> module; aliases keep old spellings working for scripts.
COMMANDS: dict[str, str] = {
    "scaling": "verify.cli.scaling",
    "paths": "verify.cli.paths",
    "pooling": "verify.cli.pooling",
    "lemma9": "verify.cli.lemma9",
    "moments": "verify.cli.lemma9",  # the old name of lemma9
    "first-order": "verify.cli.first_order",
    "sweep": "verify.cli.sweep",
    "report": "verify.cli.report",
    "query": "verify.cli.query",
    "compare": "verify.cli.compare",
    "trained": "verify.cli.trained",
    "calibrate": "verify.cli.calibrate",
    "flip-distance": "verify.cli.flip_distance",
}

EPILOG = """\
examples:
  verify scaling --arch strided-cnn --dims 32,64,128,256
  verify scaling --arch dense --dims 64,256,1024,4096 --draws 32 --json
  verify paths --arch strided-cnn --dims 16,32 --padding circular
  verify paths --arch random-dag --dims 8,12 --exact
  verify pooling --arch avgpool-cnn --pools 1,2,4,8 --dims 128
  verify lemma9 --arch random-dag --dims 6
  verify first-order --arch dense --dims 256,1024,4096 --eps 1e-4,1e-3,1e-2,1e-1
  verify sweep examples/sweep.toml --workers 2
  verify report --store reports/store --arch dense
  verify query "SELECT dim, avg(value) FROM engine WHERE quantity = 'vuln_l2' GROUP BY dim ORDER BY dim"
  verify compare --archs strided-cnn,avgpool-cnn,resnet,paper-net,vit --dims 32,64,128
  verify scaling --model examples/resnet18.py:resnet18 --dims 32,64,128
  verify trained --arch paper-net --data fashion-mnist --dims 28,56,112 --seeds 3
  verify calibrate --seeds 4 --pooled-seeds 2 --planted-seeds 2 --lemma9-seeds 2
  verify flip-distance --arch dense --dims 64,256,1024,4096,16384

Run `verify COMMAND --help` for each command's options and worked examples.
"""


def build_parser() -> ArgumentParser:
    from verify.cli.options import ArgumentParser

    parser = ArgumentParser(
        prog="verify",
        description=(
            "Check the theorems of 'First-order adversarial vulnerability of neural networks "
            "and input dimension' (Simon-Gabriel et al., ICML 2019): exactly on the DAG where "
            "they are exact, by Monte Carlo over He initialisation where they are statistical."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"verify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module).add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's stop, ``kill``), raised like Ctrl-C's KeyboardInterrupt."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` in the main thread while ``main`` runs, so that the task in
    flight is dropped and every temporary file removed, as on Ctrl-C (the default action would
    kill the process on the spot)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(exc: KeyboardInterrupt) -> int:
    from verify.cli.storage import last_store

    what = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
    store = last_store()
    kept = (
        f"; finished tasks are kept in the store {store.root}: rerun the same command to resume"
        if store is not None and not store.read_only
        else ""
    )
    print(f"verify: {what}; no report written{kept}", file=sys.stderr)
    return 143 if isinstance(exc, Terminated) else 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``verify``; returns the exit status (0 ok, 2 bad input, 130 interrupted, 143 SIGTERM)."""
    problem = installation_problem()
    if problem is not None:
        print(f"verify: error: {problem}", file=sys.stderr)
        return 2
    from graphs.errors import InputError

    try:
        with _sigterm_raises():
            argv = list(sys.argv[1:] if argv is None else argv)
            parser = build_parser()
            args, extra = parser.parse_known_args(argv)
            if extra:
                # argparse would blame the top-level parser; name the command the flag was given to.
                where = f"verify {args.command}" if getattr(args, "command", None) else "verify"
                raise InputError(f"{where}: unrecognized arguments: {' '.join(extra)}; see {where} --help")
            # Reports quote the command that made them; in-process callers have no sys.argv of their own.
            args.command_line = "verify " + shlex.join(argv)
            args.argv = argv
            if not getattr(args, "func", None):
                raise InputError(f"no COMMAND given; give one of {', '.join(COMMANDS)} (see verify --help)")
            return int(args.func(args) or 0)
    except InputError as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version exit 0 through argparse
        return int(exc.code or 0)
    except KeyboardInterrupt as exc:
        return _interrupted(exc)


def entry_point() -> None:
    sys.exit(main())
