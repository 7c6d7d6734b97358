"""The pre-flight memory estimates (verify/memory.py) against measured peaks.

Each piece runs in a fresh Python process; its peak resident memory (``ru_maxrss``) after the
imports is subtracted from the peak after the piece (a user's module's engine: the resident size
sampled every 0.5 ms, less the size just before; its building peaked higher), and printed beside the estimate with
their ratio (estimate / measured: above 1 means the estimate errs on the safe side). The
last line is the interpreter-plus-libraries baseline against ``BASELINE_BYTES``.

    python bench/bench_memory.py            # the default pieces, ~1-2 minutes on 2 cores
    python bench/bench_memory.py --large    # adds the 512 px exact side (~1.2 GB)
    python bench/bench_memory.py --only vit,"module build","module engine"   # the open architectures

Re-run it after changing any piece of the engine or the exact side (e.g. streaming the
operator form) and update the constants of verify/memory.py from its ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PIECE = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from graphs.spec import build_spec
from verify import memory
import verify.checks.first_order, verify.checks.scaling, verify.checks.second_moments, verify.engine, verify.stats
import graphs.dag, pandas, scipy.stats
kind, family, dim, opts, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
if kind.startswith("module"):
    # a user's module (FILE.py:FACTORY): measured on the meta device, then built and probed
    from verify.usermodel import UserModel, load_factory, meta_footprint, model_specs
    model = UserModel(family, **opts)
    footprint = meta_footprint(load_factory(family), model, dim)
    if kind == "module engine":
        (spec,) = model_specs(model, [dim])
else:
    spec = build_spec(family, dim, **opts)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if kind == "module build":
    model_specs(model, [dim])
    est = memory.module_build(footprint, "").bytes
elif kind == "module engine":
    # building the module peaked higher than its engine will (float64 copies): ru_maxrss cannot
    # fall, so the current resident size is sampled instead, from just before the engine
    import os, threading, time
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    top, done = [0], threading.Event()
    def sample():
        while not done.is_set():
            top[0] = max(top[0], rss())
            time.sleep(0.0005)
    sampler = threading.Thread(target=sample)
    start = rss()
    sampler.start()
    verify.engine.measure([spec], draws=1, batch=n, seed=0)
    done.set()
    sampler.join()
    est = memory.engine(spec, "", batch=n).bytes
    print(json.dumps({"base": base, "measured": top[0] - start, "estimate": est}))
    sys.exit(0)
elif kind == "exact side":
    verify.checks.scaling.size_status(spec)
    est = memory.exact_side(spec, "").bytes
elif kind == "engine":
    verify.engine.measure([spec], draws=1, batch=n, seed=0)
    est = memory.engine(spec, "", batch=n).bytes
elif kind == "Eq. 13":
    verify.checks.second_moments.exact_second_moments(spec)
    est = memory.second_moments(spec, "").bytes
elif kind == "DAG":
    g = graphs.dag.to_dag(spec)
    est = memory.dag(spec, "").bytes
elif kind == "first-order":
    from verify.checks.first_order import FirstOrderConfig, _Block, _draw
    _draw(spec, FirstOrderConfig((spec,), draws=2, batch=n), 0, "cpu", _Block())
    est = memory.first_order_engine(spec, "", batch=n).bytes
elif kind == "records":
    rec = verify.engine.measure([spec], draws=n, batch=10, seed=0)
    est = memory.records(len(rec), "").bytes
elif kind == "bootstrap":
    rec = verify.engine.measure([build_spec(family, d, **opts) for d in (dim, 2 * dim, 4 * dim, 8 * dim)], draws=n, batch=1, seed=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    verify.stats.fit_power_law(rec, "logit_grad_l2", "d", n_boot=2000, seed=0)
    est = memory.bootstrap(n, 4, 2000).bytes
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "measured": peak - base, "estimate": est}))
"""

PIECES = [
    ("exact side", "strided-cnn", 128, {}, 0),
    ("exact side", "strided-cnn", 256, {}, 0),
    ("exact side", "strided-cnn", 256, {"padding": "circular"}, 0),
    ("exact side", "dense", 16384, {}, 0),
    ("exact side", "random-dag", 512, {}, 0),
    ("engine", "strided-cnn", 256, {}, 2),
    ("engine", "strided-cnn", 256, {}, 8),
    ("engine", "dense", 65536, {}, 2),
    ("Eq. 13", "avgpool-cnn", 128, {"channels": 16}, 0),
    ("Eq. 13", "avgpool-cnn", 256, {"channels": 16}, 0),
    ("DAG", "dense", 256, {}, 0),
    ("DAG", "strided-cnn", 16, {"channels": 8}, 0),
    ("first-order", "dense", 16384, {}, 32),
    ("first-order", "strided-cnn", 64, {"channels": 16}, 8),
    ("records", "dense", 16, {"widths": [8]}, 20000),
    ("bootstrap", "dense", 16, {"widths": [8]}, 2000),
    # the open architectures: attention's heads x T^2 (256 and 1024 tokens), a user's opaque module
    ("engine", "vit", 64, {"patch": 4}, 8),
    ("engine", "vit", 128, {"patch": 4}, 2),
    ("module build", "examples/small_vit.py:small_vit", 64, {}, 0),
    ("module engine", "examples/small_vit.py:small_vit", 64, {}, 4),
    ("module build", "examples/resnet18.py:resnet18", 128, {}, 0),
    ("module engine", "examples/resnet18.py:resnet18", 128, {}, 4),
]
LARGE = [("exact side", "strided-cnn", 512, {"padding": "circular"}, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="add the 512 px exact side (~1.2 GB)")
    parser.add_argument(
        "--only", default=None, help="comma-separated kinds or families to run (e.g. vit,module engine,module build)"
    )
    args = parser.parse_args()
    only = None if args.only is None else {w.strip() for w in args.only.split(",")}
    sys.path.insert(0, ROOT)  # this checkout's verify, not another installed copy
    from verify.memory import BASELINE_BYTES

    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    print(f"{'piece':13s} {'net':38s} {'n':>6s} {'measured':>10s} {'estimate':>10s} {'ratio':>6s}")
    bases = []
    for kind, family, dim, opts, n in PIECES + (LARGE if args.large else []):
        if only is not None and kind not in only and family not in only:
            continue
        run = subprocess.run(
            [sys.executable, "-c", PIECE, kind, family, str(dim), json.dumps(opts), str(n)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        if run.returncode:
            print(f"{kind:12s} {family} {dim}: failed\n{run.stderr[-800:]}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        if not kind.startswith("module"):  # a module's base is taken after it was built
            bases.append(r["base"])
        net = f"{family.rpartition('/')[2]} {dim} {json.dumps(opts) if opts else ''}"
        mb = 1 << 20
        print(
            f"{kind:13s} {net:38s} {n:6d} {r['measured'] / mb:8.1f}MB {r['estimate'] / mb:8.1f}MB "
            f"{r['estimate'] / max(r['measured'], 1):6.2f}",
            flush=True,
        )
    if bases:
        print(
            f"baseline (interpreter and libraries): measured {max(bases) / (1 << 20):.0f} MB, BASELINE_BYTES "
            f"{BASELINE_BYTES / (1 << 20):.0f} MB"
        )


if __name__ == "__main__":
    main()
