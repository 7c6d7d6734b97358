"""The ``verify`` command: ``main(argv=None) -> int``, one thin module per sub-command.

Each sub-command module defines ``add_parser(subparsers)`` (whose defaults set ``func``) and
``run(args) -> int``, and does only this: parse, build a config, call the check function,
render the result, write it. Modules import torch and the checks inside ``run`` so that
``verify --help`` stays fast.

Bad input anywhere (argparse, spec building, the file system) ends in one line on stderr and
exit status 2, with nothing written.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Sequence

from graphs.errors import InputError
from verify.cli.options import ArgumentParser
from verify.version import __version__

__all__ = ["COMMANDS", "build_parser", "entry_point", "main"]

# command name -> module; aliases keep old spellings working for scripts.
COMMANDS: dict[str, str] = {
    "scaling": "verify.cli.scaling",
    "paths": "verify.cli.paths",
    "pooling": "verify.cli.pooling",
    "lemma9": "verify.cli.lemma9",
    "moments": "verify.cli.lemma9",  # the old name of lemma9
    "first-order": "verify.cli.first_order",
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
  verify calibrate --seeds 4 --pooled-seeds 2 --planted-seeds 2 --lemma9-seeds 2
  verify flip-distance --arch dense --dims 64,256,1024,4096,16384

Run `verify COMMAND --help` for each command's options and worked examples.
"""


def build_parser() -> ArgumentParser:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``verify``; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser()
        args = parser.parse_args(argv)
        # Reports quote the command that made them; in-process callers have no sys.argv of their own.
        args.command_line = "verify " + shlex.join(argv)
        if not getattr(args, "func", None):
            raise InputError(f"give a command ({', '.join(COMMANDS)}); see verify --help")
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version exit 0 through argparse
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("verify: interrupted; no report written", file=sys.stderr)
        return 130


def entry_point() -> None:
    sys.exit(main())
