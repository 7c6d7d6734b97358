"""Engine speed on the paper's 3 x 256 x 256 strided CNN (64 channels) against references measured in the same run.

Every figure is a ratio to something timed in the same process, interleaved with it, so a
burst of load from other processes hits both alike. Sections (``--sections``, default all):

cores    At ``--threads`` (default 2) threads, best of ``--rounds`` (default 10) interleaved
         rounds of: square fp32 ``torch.mm`` (2048^2, what the cores can do); the engine
         (``verify.engine.draw_quantities`` on its CPU backend, whole draws: weights and inputs
         drawn, one forward and one stacked backward pass, the quantities) with freed memory
         kept (``verify.allocator``, as every run does); the engine's autograd backend; a plain
         per-sample ``autograd.grad`` loop on an ``nn.Module`` (NCHW). FLOPs are counted
         analytically: 3 x the forward pass's multiply-adds x 2 per sample. Prints engine /
         matmul (goal >= 0.6 on a quiet machine) and engine / loop.
percore  At one thread, CPU time of this thread (``time.thread_time``) over ``--cpu-rounds``
         (default 5) interleaved rounds of the matmul and the engine: GFLOP per CPU-second,
         and the ratio (goal >= 0.75), which load on other cores hardly moves.
memory   The lever of ``verify.allocator``: the engine with freed memory kept against freed
         memory returned to the OS (glibc's default), interleaved, with minor page faults per
         draw (``resource.getrusage``).
layers   One thread: each layer's forward and input-gradient (batch of 2B cotangents) time and
         GFLOP/s, against the matmul.
threads  The thread policy: ``verify.engine.measure`` (the whole Monte Carlo loop) with one
         thread, all threads, and the default policy (``ThreadTuner``), interleaved over
         ``--policy-rounds`` rounds, first as the machine is, then with ``--load`` busy
         processes that this script starts (and stops). Prints each as a multiple of the
         one-thread time of its round; the goal is default <= 1-thread in both. The default
         policy times its choices while it runs, so a short run pays a larger share for that
         (the main job runs 160 draws per size; here 16 by default).
backends The backend choice of ``backend='auto'`` on small nets (ms per draw of 2 inputs).

    python bench/bench_engine.py [--n 256] [--threads 2] [--rounds 10] [--cpu-rounds 5] [--load 1]
    python bench/bench_engine.py --sections cores,percore
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/...` from anywhere: this checkout's code, not an installed one
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from graphs.spec import build_spec  # noqa: E402
from verify.allocator import glibc_available, retain_freed_memory  # noqa: E402
from verify.engine import choose_backend, draw_quantities, forward_flops, measure, supports_manual  # noqa: E402
from verify.model import build_module, sample_params  # noqa: E402
from verify.runtime import runtime  # noqa: E402
from verify.sampling import sample_inputs, sample_labels  # noqa: E402

SECTIONS = ("cores", "percore", "memory", "layers", "threads", "backends")
MM = 2048


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cpu_timed(fn) -> float:
    t = time.thread_time()
    fn()
    return time.thread_time() - t


def loop_fn(spec, batch: int):
    """Per-sample autograd.grad loop: one forward, two input gradients per input."""
    net = build_module(spec, seed=0, draw=0)
    x = sample_inputs(spec, 0, 0, batch)
    y = sample_labels(spec, 0, 0, batch)

    def run():
        for i in range(batch):
            xi = x[i : i + 1].clone().requires_grad_(True)
            logits = net(xi)
            loss = F.cross_entropy(logits, y[i : i + 1])
            torch.autograd.grad(loss, xi, retain_graph=True)
            torch.autograd.grad(logits[0, y[i]], xi)

    return run


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def section_cores(spec, args) -> None:
    torch.set_num_threads(args.threads)
    a, b = torch.randn(MM, MM), torch.randn(MM, MM)
    cpu = torch.device("cpu")
    draws = list(range(args.draws))
    per_sample_flops = 3 * forward_flops(spec)
    fns = {
        "matmul": lambda: torch.mm(a, b),
        "engine": lambda: draw_quantities(spec, 0, draws, args.batch, device=cpu),
        "autograd": lambda: draw_quantities(spec, 0, draws, args.batch, device=cpu, backend="autograd"),
        "loop": loop_fn(spec, args.batch),
    }
    best: dict[str, float] = {}
    with retain_freed_memory():
        for fn in fns.values():
            fn()  # warm-up: oneDNN primitives, the allocator's heap
        for _ in range(args.rounds):
            for name, fn in fns.items():
                best[name] = min(best.get(name, float("inf")), timed(fn))
    mm = 2 * MM**3 / best["matmul"] / 1e9
    samples = {"engine": args.draws * args.batch, "autograd": args.draws * args.batch, "loop": args.batch}
    gf = {k: per_sample_flops * samples[k] / best[k] / 1e9 for k in samples}
    print(f"\n[cores] {args.threads} thread(s), best of {args.rounds} interleaved rounds; {load_line()}")
    print(f"  fp32 matmul {MM}^2:                 {mm:8.1f} GFLOP/s")
    for k, label in (
        ("engine", "engine (manual backend)"),
        ("autograd", "engine, autograd backend"),
        ("loop", "per-sample autograd.grad loop"),
    ):
        ms = best[k] / samples[k] * 1e3
        print(f"  {label:34s} {gf[k]:8.1f} GFLOP/s  {ms:7.1f} ms/sample  {gf[k] / mm:5.2f} x matmul")
    print(f"  ratio engine / matmul: {gf['engine'] / mm:.2f}  (goal >= 0.6 on a quiet machine)")
    print(f"  ratio engine / loop:   {gf['engine'] / gf['loop']:.2f}")


def section_percore(spec, args) -> None:
    torch.set_num_threads(1)
    a, b = torch.randn(MM, MM), torch.randn(MM, MM)
    cpu = torch.device("cpu")
    draws = list(range(args.draws))
    flops = 3 * forward_flops(spec) * args.draws * args.batch
    best = {"matmul": float("inf"), "engine": float("inf")}
    with retain_freed_memory():
        draw_quantities(spec, 0, draws, args.batch, device=cpu)
        torch.mm(a, b)
        for _ in range(args.cpu_rounds):
            best["matmul"] = min(best["matmul"], cpu_timed(lambda: torch.mm(a, b)))
            best["engine"] = min(
                best["engine"], cpu_timed(lambda: draw_quantities(spec, 0, draws, args.batch, device=cpu))
            )
    mm = 2 * MM**3 / best["matmul"] / 1e9
    eng = flops / best["engine"] / 1e9
    print(
        f"\n[percore] one thread, CPU time of this thread, best of {args.cpu_rounds} interleaved rounds; {load_line()}"
    )
    print(f"  fp32 matmul {MM}^2:  {mm:8.1f} GFLOP per CPU-second")
    print(
        f"  engine:              {eng:8.1f} GFLOP per CPU-second  ({best['engine'] / args.draws * 1e3:.0f} ms CPU per draw)"
    )
    print(f"  ratio engine / matmul per core: {eng / mm:.2f}  (goal >= 0.75)")


def section_memory(spec, args) -> None:
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    draws = list(range(args.draws))
    if not glibc_available():
        print("\n[memory] not glibc: verify.allocator has no effect here; skipped")
        return
    res: dict[str, list[tuple[float, float]]] = {"kept": [], "returned": []}
    for _ in range(max(3, args.rounds // 3)):
        with retain_freed_memory():
            draw_quantities(spec, 0, draws[:1], args.batch, device=cpu)  # refill the heap after the last trim
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = timed(lambda: draw_quantities(spec, 0, draws, args.batch, device=cpu))
            res["kept"].append((t, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / args.draws))
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = timed(lambda: draw_quantities(spec, 0, draws, args.batch, device=cpu))
        res["returned"].append((t, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / args.draws))
    best = {k: min(v) for k, v in res.items()}
    print(f"\n[memory] {args.threads} thread(s), best of {len(res['kept'])} interleaved rounds; {load_line()}")
    for k, label in (
        ("kept", "freed memory kept (verify.allocator)"),
        ("returned", "freed memory returned (glibc default)"),
    ):
        t, faults = best[k]
        print(f"  {label:40s} {t / args.draws * 1e3:7.1f} ms/draw  {faults:8.0f} minor faults/draw")
    print(f"  speed-up from keeping freed memory: {best['returned'][0] / best['kept'][0]:.2f}x")


def section_layers(spec, args) -> None:
    torch.set_num_threads(1)
    cl = torch.channels_last
    a, b = torch.randn(MM, MM), torch.randn(MM, MM)
    params = [
        w.contiguous(memory_format=cl) if w is not None and w.dim() == 4 else w for w in sample_params(spec, 0, 0)
    ]
    h = sample_inputs(spec, 0, 0, args.batch).contiguous(memory_format=cl)
    shapes = spec.shapes

    def best(fn, n=3) -> float:
        fn()
        return min(timed(fn) for _ in range(n))

    with retain_freed_memory():
        mm = 2 * MM**3 / best(lambda: torch.mm(a, b)) / 1e9
        print(f"\n[layers] one thread; fp32 matmul {mm:.1f} GFLOP/s; {load_line()}")
        for l, (layer, w) in enumerate(zip(spec.layers, params), start=1):
            hin = h
            fl = layer.flops([shapes[j] for j in layer.reads(l)], shapes[l]) * args.batch
            tf = best(lambda: layer.apply(w, [hin]))  # noqa: B023 - timed now
            h = layer.apply(w, [hin])
            h = torch.relu(h) if layer.relu else h
            g = torch.randn(2 * args.batch, *h.shape[1:])
            g = g.contiguous(memory_format=cl) if g.dim() == 4 else g
            tb = best(lambda: layer.input_vjp(w, g, (2 * args.batch, *hin.shape[1:])))  # noqa: B023
            print(
                f"  layer {l} {layer.describe():34s} forward {tf * 1e3:7.1f} ms {fl / tf / 1e9:6.1f} GFLOP/s ({fl / tf / 1e9 / mm:4.2f} x mm)"
                f"   input gradient {tb * 1e3:7.1f} ms {2 * fl / tb / 1e9:6.1f} GFLOP/s ({2 * fl / tb / 1e9 / mm:4.2f} x mm)"
            )


def _busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def section_threads(spec, args) -> None:
    n_all = args.threads

    def run(threads):
        with runtime("cpu", threads=threads) as rt:
            measure([spec], draws=args.policy_draws, batch=args.batch, seed=0, rt=rt)

    print(
        f"\n[threads] measure() over {args.policy_draws} draws; median of {args.policy_rounds} interleaved rounds, each as a multiple of that round's 1-thread time"
    )
    for loaded in (False, True):
        procs = _busy(args.load) if loaded else []
        try:
            time.sleep(1.0 if loaded else 0.0)
            state = f"with {args.load} busy process(es) started here" if loaded else "machine as it is"
            ratios: dict[str, list[float]] = {"1 thread": [], f"{n_all} threads": [], "default policy": []}
            secs: dict[str, list[float]] = {k: [] for k in ratios}
            run(1)  # warm-up
            for _ in range(args.policy_rounds):
                t1 = timed(lambda: run(1))
                tn = timed(lambda: run(n_all))
                td = timed(lambda: run(None))
                for k, t in zip(ratios, (t1, tn, td)):
                    ratios[k].append(t / t1)
                    secs[k].append(t)
            print(f"  {state}; {load_line()}")
            for k in ratios:
                print(
                    f"    {k:16s} {statistics.median(secs[k]) / args.policy_draws * 1e3:8.1f} ms/draw   {statistics.median(ratios[k]):5.2f} x 1 thread"
                )
        finally:
            for p in procs:
                p.kill()
                p.wait()


def section_backends(args) -> None:
    print("\n[backends] small nets (ms per draw of 2 inputs; * = the one backend='auto' picks on a CPU)")
    with retain_freed_memory():
        for family, dim in [("dense", 1024), ("random-dag", 256), ("strided-cnn", 32), ("strided-cnn", 64)]:
            small = build_spec(family, dim)
            backends = ["autograd", "manual", "vmap"] if supports_manual(small) else ["autograd", "vmap"]
            auto = choose_backend(small, 2)
            cells = []
            for backend in backends:

                def one(b=backend, s=small):
                    return measure([s], draws=16, batch=2, seed=0, backend=b)

                one()
                t = min(timed(one) for _ in range(2)) / 16
                cells.append(f"{backend}{'*' if backend == auto else ' '} {t * 1e3:7.2f}")
            print(f"  {family:12s} dim {dim:5d}: " + "   ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--draws", type=int, default=2, help="weight draws per timing (default 2)")
    parser.add_argument("--batch", type=int, default=2, help="inputs per draw (default 2, the CLI default)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the multi-thread figures (default 2)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds at --threads (default 10)")
    parser.add_argument("--cpu-rounds", type=int, default=5, help="interleaved rounds at one thread (default 5)")
    parser.add_argument(
        "--policy-draws", type=int, default=16, help="draws per measure() of the thread section (default 16)"
    )
    parser.add_argument(
        "--policy-rounds", type=int, default=3, help="interleaved rounds of the thread section (default 3)"
    )
    parser.add_argument("--load", type=int, default=1, help="busy processes of the loaded thread figures (default 1)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    args = parser.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {','.join(SECTIONS)}")
    spec = build_spec("strided-cnn", args.n)
    print(f"torch {torch.__version__}; {os.cpu_count()} cores; {load_line()}")
    print(
        f"net: {spec.describe()}; {forward_flops(spec) / 1e9:.3f} GFLOP forward, {3 * forward_flops(spec) / 1e9:.3f} GFLOP per sample (forward + 2 backward)"
    )
    for name in sections:
        if name == "cores":
            section_cores(spec, args)
        elif name == "percore":
            section_percore(spec, args)
        elif name == "memory":
            section_memory(spec, args)
        elif name == "layers":
            section_layers(spec, args)
        elif name == "threads":
            section_threads(spec, args)
        else:
            section_backends(args)


if __name__ == "__main__":
    main()
