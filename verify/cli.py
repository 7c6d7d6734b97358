"""The ``verify`` command: ``main(argv=None) -> int``, one sub-command per module.

Bad input anywhere (argparse, spec building, file system) ends in one line on stderr and
exit status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Sequence

from graphs.errors import InputError

__all__ = ["main", "ArgumentParser", "COMMANDS"]

# Each module exposes ``add_parser(subparsers) -> ArgumentParser`` whose defaults set ``func``.
COMMANDS = ("scaling", "paths", "pooling", "moments", "first_order")

EPILOG = """\
examples:
  verify scaling --arch strided-cnn --dims 32,64,128,256
  verify scaling --arch dense --dims 64,256,1024,4096 --samples 32 --json
  verify paths --arch strided-cnn --dims 16,32 --padding circular
  verify paths --arch random-dag --dims 8,12 --exact
  verify pooling --arch avgpool-cnn --pools 1,2,4,8 --dim 128
  verify moments --arch random-dag --dims 6
  verify first-order --arch dense --dims 256,1024,4096 --eps 1e-4,1e-3,1e-2,1e-1

Run `verify COMMAND --help` for each command's options and worked examples.
"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one ``InputError`` line instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise InputError(f"{self.prog}: {message}; see {self.prog} --help")


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"verify.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``verify``; returns the exit status (0 ok, 2 bad input)."""
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser()
        args = parser.parse_args(argv)
        # Reports quote the command that made them; in-process callers have no sys.argv of their own.
        args.command_line = "verify " + shlex.join(argv)
        if not getattr(args, "func", None):
            names = ", ".join(c.replace("_", "-") for c in COMMANDS)
            raise InputError(f"give a command ({names}); see verify --help")
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help exits 0 through argparse
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("verify: interrupted; no report written", file=sys.stderr)
        return 130


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
