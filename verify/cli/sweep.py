"""``verify sweep FILE.toml``: a grid of checks, run here, in worker processes or on Dask."""

from __future__ import annotations

import argparse

from verify.cli import options as opt

HELP = "run a grid of architectures x options x sizes x seeds x commands from a TOML file"

EPILOG = """\
examples:
  verify sweep examples/sweep.toml                            # one job at a time, in this process
  verify sweep examples/sweep.toml --workers 2                # two worker processes on this machine
  verify sweep examples/sweep.toml --executor dask --scheduler tcp://10.0.0.5:8786

The file (see examples/sweep.toml) names the commands, the seeds and, per architecture
([arch.NAME]), the sizes and family options; a list is a grid axis, a scalar a fixed value.
A table named after a command ([scaling], [pooling], ...) gives that command's flags. Each
combination is one report, OUT_DIR/COMMAND/ARCH-OPTIONS-seedS/, and OUT_DIR/index.md links
them all with their verdicts.

Every Monte Carlo draw goes to the sweep's results store (default OUT_DIR/store), one
Parquet file per finished task. Rerunning the sweep skips what the store holds: a sweep
stopped by Ctrl-C, SIGTERM or a dead machine resumes where it stopped, and a sweep with
larger draws computes only the new ones. The store is the same, task for task, whatever the
executor, because a task is a function of its key.

To go to a cluster (dask.distributed, `pip install 'adv-dim-verify[dask]'` on every machine):
  dask scheduler                                   # on one machine; prints tcp://HOST:8786
  dask worker tcp://HOST:8786 --nthreads 1         # on each machine (one per GPU, with
                                                   # CUDA_VISIBLE_DEVICES, where there are GPUs)
  verify sweep FILE.toml --executor dask --scheduler tcp://HOST:8786 --store /shared/store
The store (and the output folder) must be one folder every worker sees (a shared file system).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from verify.sweep import EXECUTORS

    parser = subparsers.add_parser(
        "sweep",
        help=HELP,
        description=(
            "Expand a TOML sweep file into one job per command, architecture, option combination and seed, run the "
            "jobs (skipping the draws the results store already holds) and write an index page linking every report."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE.toml", help="the sweep file (see examples/sweep.toml)")
    g = parser.add_argument_group("execution")
    g.add_argument(
        "--executor", default="local", choices=EXECUTORS, help="local (this machine, default) or dask (a cluster)"
    )
    g.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default 1: in process)")
    g.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler, tcp://HOST:PORT (--executor dask)"
    )
    g.add_argument("--retries", type=int, default=2, metavar="N", help="Dask retries of a failed job (default 2)")
    g.add_argument("--dry-run", action="store_true", help="list the jobs' command lines and stop")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out-dir", default=None, help="report folder (default: the file's out_dir, else reports/sweep-NAME)"
    )
    out.add_argument(
        "--store", default=None, metavar="DIR", help="results store (default: the file's store, else OUT_DIR/store)"
    )
    out.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from pathlib import Path

    from graphs.errors import InputError
    from verify.cli import storage
    from verify.report import check_out_dir, json_text, write_files
    from verify.store import Store
    from verify.sweep import index_markdown, load_sweep, run_jobs
    from verify.version import __version__

    timer = opt.Timer()
    opt.positive_int("--workers", args.workers, 1)
    if args.retries < 0:
        raise InputError(f"--retries: {args.retries} is negative; give 0 or more")
    if args.executor == "dask" and not args.scheduler:
        raise InputError("--executor dask needs --scheduler tcp://HOST:PORT (the address `dask scheduler` prints)")
    if args.executor != "dask" and args.scheduler:
        raise InputError("--scheduler applies to --executor dask only; add --executor dask or drop it")
    sweep = load_sweep(args.file, out_dir=args.out_dir, store=args.store)
    check_out_dir(sweep.out_dir)
    check_out_dir(sweep.store, "--store")
    # an interrupted sweep's message names the store it resumes from
    storage.remember(Store(sweep.store))
    if args.dry_run:
        for job in sweep.jobs:
            print("verify " + shlex.join(job.argv))
        return 0

    finished = [0]

    def progress(i: int, r) -> None:
        finished[0] += 1
        if not args.json:
            what = "done" if r.status == 0 else f"failed: {r.error}"
            job = sweep.jobs[i]
            print(f"[{finished[0]}/{len(sweep.jobs)}] {job.command} {job.slug}: {what}", file=sys.stderr, flush=True)

    results = run_jobs(
        sweep.jobs,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        retries=args.retries,
        on_result=progress,
    )
    command_line = getattr(args, "command_line", "verify sweep")
    index = index_markdown(sweep, results, command_line=command_line)
    paths = write_files(sweep.out_dir, {"index.md": index})
    failed = [r for r in results if r.status != 0]
    if args.json:
        claims = [
            {**c, "report": str(Path(job.out_dir, (r.envelope or {}).get("report", "")))}
            for job, r in zip(sweep.jobs, results)
            for c in ((r.envelope or {}).get("claims") or [])
        ]
        verdicts: dict[str, int] = {}
        for r in results:
            for k, n in ((r.envelope or {}).get("verdicts") or {}).items():
                verdicts[k] = verdicts.get(k, 0) + n
        print(
            json_text(
                {
                    "command": "sweep",
                    "version": __version__,
                    "file": str(sweep.path),
                    "out_dir": str(sweep.out_dir),
                    "store": str(sweep.store),
                    "verdicts": verdicts,
                    "jobs": [
                        {"argv": list(r.argv), "status": r.status, "error": r.error, "result": r.envelope}
                        for r in results
                    ],
                    "claims": claims,
                }
            )
        )
    else:
        print(f"{len(results) - len(failed)} of {len(sweep.jobs)} report(s) written; index: {paths[0]}")
        print(f"store: {sweep.store}")
        print(f"wall time: {timer.seconds:.1f} s")
    if failed:
        for r in failed:
            print(f"verify sweep: job `verify {shlex.join(r.argv)}` failed: {r.error}", file=sys.stderr)
        return 2
    return 0
