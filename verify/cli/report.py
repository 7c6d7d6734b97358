"""``verify report --store DIR``: re-render reports from a results store, without recomputing."""

from __future__ import annotations

import argparse

HELP = "re-render reports from a results store (no Monte Carlo is recomputed)"

EPILOG = """\
examples:
  verify report                                        # every report recorded in reports/store
  verify report --store reports/sweep/store --arch strided-cnn
  verify report --store /shared/store --command scaling --out-dir /tmp/again

Each Monte Carlo command records in its store how it was run (STORE/_reports/*.json). This
command runs each recorded command again with the store read-only: the draws come from the
store (a draw it lacks is an error naming the command that would compute it), the exact side
(hypotheses, (H) moments) and the fits are recomputed, and the report is written to the
folder the command used (or under --out-dir). Only the wall time in the report's header
differs from the original's.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help=HELP,
        description="Re-render the reports recorded in a results store from its stored draws.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", default="reports/store", metavar="DIR", help="the store (default reports/store)")
    parser.add_argument("--arch", default=None, metavar="FAMILY", help="only the reports of this architecture family")
    parser.add_argument(
        "--command", dest="only_command", default=None, metavar="NAME", help="only this command's reports"
    )
    parser.add_argument(
        "--out-dir",
        default=None,
        help="write here instead of each report's own folder (several reports: one sub-folder each)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per report, as a JSON list")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import contextlib
    import io
    import json
    import shlex
    import sys
    from pathlib import Path

    from graphs.errors import InputError
    from verify.cli import build_parser
    from verify.report import check_out_dir, json_text
    from verify.store import Store

    root = Path(args.store)
    if not root.is_dir():
        raise InputError(f"--store {args.store!r}: no such folder; give a store a command recorded into")
    manifests = Store(root).manifests()
    if args.arch:
        manifests = [m for m in manifests if m.arch == args.arch]
    if args.only_command:
        manifests = [m for m in manifests if m.command == args.only_command]
    if not manifests:
        raise InputError(
            f"--store {args.store!r}: no recorded report"
            + (f" of --arch {args.arch}" if args.arch else "")
            + (f" of --command {args.only_command}" if args.only_command else "")
            + "; run a Monte Carlo command with --store first"
        )
    if args.out_dir is not None:
        check_out_dir(args.out_dir)
    parser = build_parser()
    envelopes, failures = [], 0
    for m in manifests:
        sub = parser.parse_args(list(m.argv))
        sub.argv = list(m.argv)
        sub.command_line = m.command_line
        sub.store = str(root)
        sub.no_store = False
        sub.store_only = True
        sub.json = True
        if args.out_dir is not None:
            sub.out_dir = args.out_dir if len(manifests) == 1 else str(Path(args.out_dir) / m.path.stem)
        else:
            sub.out_dir = m.out_dir
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                sub.func(sub)
        except InputError as exc:
            failures += 1
            print(f"verify report: {m.command_line}: {exc}; rerun `{m.command_line}` to compute them", file=sys.stderr)
            continue
        env = json.loads(out.getvalue())
        envelopes.append(env)
        if not args.json:
            v = ", ".join(f"{n} {k}" for k, n in env.get("verdicts", {}).items() if n) or "no claims"
            where = Path(sub.out_dir) / env.get("report", "")
            print(f"{where}: {v}  (from `{shlex.join(m.argv[:3])} ...`)")
    if args.json:
        print(json_text(envelopes))
    return 2 if failures else 0
