"""Start-up time of the command line: ``verify --help`` against a bare interpreter, same run.

``verify --help`` (and every sub-command's ``--help``) must not import torch, scipy, pandas or
matplotlib: the commands import them inside ``run``. Prints the best of ``--rounds`` wall
times of ``python -m verify --help``, ``python -m verify scaling --help`` and ``python -c
pass`` (the interpreter alone), interleaved, and the heavy modules a ``--help`` loaded (none
expected). Goal: ``verify --help`` under 0.5 s.

    python bench/bench_startup.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "scipy", "pandas", "matplotlib", "networkx")


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds, best kept (default 10)")
    args = parser.parse_args()
    py = sys.executable
    cmds = {
        "python -c pass": [py, "-c", "pass"],
        "verify --help": [py, "-m", "verify", "--help"],
        "verify scaling --help": [py, "-m", "verify", "scaling", "--help"],
    }
    best = dict.fromkeys(cmds, float("inf"))
    for _ in range(args.rounds):
        for name, cmd in cmds.items():
            best[name] = min(best[name], wall(cmd))
    probe = (
        "import sys, runpy; sys.argv = ['verify', '--help']\n"
        "try:\n    runpy.run_module('verify', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False).stdout
    loaded = next((line[len("HEAVY:") :] for line in out.splitlines() if line.startswith("HEAVY:")), "?")
    one, five, _ = os.getloadavg()
    print(f"best of {args.rounds} interleaved rounds; load average {one:.2f} (1 min), {five:.2f} (5 min)")
    base = best["python -c pass"]
    for name, t in best.items():
        print(f"  {name:24s} {t * 1e3:7.0f} ms   {t / base:5.2f} x the bare interpreter")
    print(f"verify --help: {best['verify --help']:.2f} s (goal < 0.5 s); heavy modules loaded: {loaded or 'none'}")


if __name__ == "__main__":
    main()
