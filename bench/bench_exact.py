"""The exact side at large sizes: (S), H3, path sums and Eq. 13 of the paper net in bounded memory.

For each size (default 256, 2048 and 4096), in a fresh process of its own so that its peak
memory is its own: ``verify.checks.scaling.size_status`` (what every scaling report runs per
size: the path sums' d*P range, the randomised (S) test with its out-degree bound and degree
values, H3's violation fraction, Eq. 13's E||d_x f_c||^2 under (H) with both variances), each
pass timed, then the peak resident memory of the
process (``resource.getrusage``, which includes torch and the interpreter, ~0.3 GB). Passes
run in row bands (``graphs.streaming``) once a whole pass would exceed 512 MB; the goal is
< 4 GB at 4096 x 4096. Time is also given per input pixel as a multiple of the first size's,
measured in the same run (1.0 = linear in d).

    python bench/bench_exact.py [--dims 256,2048,4096] [--arch strided-cnn] [--padding zeros]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def child(arch: str, dim: int, padding: str) -> None:
    import torch

    from graphs.hypotheses import h3_violation_fraction
    from graphs.pathsums import path_sum_summary
    from graphs.spec import build_spec
    from graphs.symmetry import symmetry_verdict
    from verify.checks.scaling import exact_moments

    torch.set_num_threads(1)
    spec = build_spec(arch, dim, padding=padding)
    timings = {}
    results = {}
    for name, fn in (
        ("path sums", lambda: path_sum_summary(spec, progress=True)),
        ("(S)", lambda: symmetry_verdict(spec, progress=True)),
        ("H3", lambda: h3_violation_fraction(spec)),
        ("Eq. 13", lambda: exact_moments(spec, progress=True)),
    ):
        w, c = time.perf_counter(), time.process_time()
        results[name] = fn()
        timings[name] = (time.perf_counter() - w, time.process_time() - c)
    paths, sym, h3 = results["path sums"], results["(S)"], results["H3"]
    out = {
        "dim": dim,
        "d": spec.d,
        "timings": timings,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "streamed": bool(paths.streamed),
        "dp": [paths.scaled_min, paths.scaled_max],
        "symmetric": bool(sym.symmetric),
        "method": sym.method,
        "h3": float(h3),
        "eq13": list(results["Eq. 13"]),
    }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="256,2048,4096", help="image sides, comma-separated (default 256,2048,4096)")
    parser.add_argument("--arch", default="strided-cnn", help="family (default strided-cnn)")
    parser.add_argument("--padding", default="zeros", help="padding (default zeros)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.arch, args.child, args.padding)
        return
    one, five, _ = os.getloadavg()
    print(
        f"{args.arch}, padding {args.padding}; one thread per size; load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
    )
    base = None
    for dim in (int(x) for x in args.dims.split(",") if x.strip()):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(dim), "--arch", args.arch, "--padding", args.padding],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(f"dim {dim}: failed with status {proc.returncode} after {wall:.1f} s")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        cpu = sum(c for _, c in r["timings"].values())
        per_pixel = cpu / r["d"]
        base = base or per_pixel
        passes = "  ".join(f"{k} {w:.1f} s ({c:.1f} CPU-s)" for k, (w, c) in r["timings"].items())
        print(
            f"dim {dim} (d = {r['d']:,}): {wall:.1f} s wall in all, peak memory {r['peak_mb'] / 1024:.2f} GB"
            f"{' (row bands)' if r['streamed'] else ' (whole passes)'}; CPU per pixel {per_pixel / base:.2f} x dim {args.dims.split(',')[0]}"
        )
        print(f"    {passes}")
        print(
            f"    d*P in [{r['dp'][0]:.5g}, {r['dp'][1]:.5g}]; (S) {'holds' if r['symmetric'] else 'fails'} ({r['method']}); H3 violation fraction {r['h3']:.4g}; "
            f"Eq. 13 {r['eq13'][0]:.6g} (2/in-degree), {r['eq13'][1]:.6g} (init)"
        )


if __name__ == "__main__":
    main()
