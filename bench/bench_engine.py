"""Engine speed on the paper's 3 x 256 x 256 strided CNN (64 channels), against two references.

In one run, on this machine and with the same threads:

1. fp32 matmul GFLOP/s (square ``torch.mm``, best of several): what the cores can do;
2. the engine's achieved GFLOP/s: ``verify.engine.draw_quantities`` on its auto backend
   (manual) on whole draws (weights, inputs, one forward and two backward passes per
   sample, the quantities); also the autograd backend (same layout) for reference. FLOPs are
   counted analytically: 3 x the forward pass's multiply-adds x 2 (a backward pass to the
   input costs as many multiply-adds as the forward; weight gradients are not computed);
3. a plain per-sample loop: ``torch.autograd.grad`` twice per input on an ``nn.Module`` in
   the default (NCHW) layout, the way one would write it without thinking about speed.

It prints both ratios (engine / matmul, engine / loop), then the comparison of backends that
``backend='auto'`` relies on, for a few small nets. The three big timings are interleaved over
``--repeats`` rounds and the best of each is kept, so a burst of load from other processes
hits all of them alike.

    python bench/bench_engine.py [--n 256] [--draws 3] [--batch 2] [--repeats 3] [--threads T]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from graphs.spec import build_spec
from verify.engine import choose_backend, draw_quantities, forward_flops, measure, supports_manual
from verify.model import build_module
from verify.sampling import sample_inputs, sample_labels


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN primitive creation, allocator
    return min(timed(fn) for _ in range(repeats))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--draws", type=int, default=3, help="weight draws per timing (default 3)")
    parser.add_argument("--batch", type=int, default=2, help="inputs per draw (default 2, the CLI default)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = build_spec("strided-cnn", args.n)
    flops_per_sample = 3 * forward_flops(spec)
    print(f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(
        f"net: {spec.describe()}; {forward_flops(spec) / 1e9:.3f} GFLOP forward, {flops_per_sample / 1e9:.3f} GFLOP per sample (forward + 2 backward)"
    )

    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    device = torch.device("cpu")
    draws = list(range(args.draws))
    samples = args.draws * args.batch
    fns = {
        "matmul": lambda: torch.mm(a, b),
        "engine": lambda: draw_quantities(spec, 0, draws, args.batch, device=device),
        "autograd": lambda: draw_quantities(spec, 0, draws, args.batch, device=device, backend="autograd"),
        "loop": loop_fn(spec, args.batch),
    }
    best = {}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in fns.items():
            best[name] = min(best.get(name, float("inf")), timed(fn))
    mm = 2 * 2048**3 / best["matmul"] / 1e9
    per = {k: best[k] / (samples if k != "loop" else args.batch) for k in ("engine", "autograd", "loop")}
    gf = {k: flops_per_sample / v / 1e9 for k, v in per.items()}

    print(f"fp32 matmul (2048^2):            {mm:8.1f} GFLOP/s")
    print(f"engine (auto backend = manual):  {gf['engine']:8.1f} GFLOP/s   {per['engine'] * 1e3:7.1f} ms/sample")
    print(f"engine, autograd backend:        {gf['autograd']:8.1f} GFLOP/s   {per['autograd'] * 1e3:7.1f} ms/sample")
    print(f"per-sample autograd.grad loop:   {gf['loop']:8.1f} GFLOP/s   {per['loop'] * 1e3:7.1f} ms/sample")
    print(f"ratio engine / matmul: {gf['engine'] / mm:.2f}   (target >= 0.5)")
    print(f"ratio engine / loop:   {gf['engine'] / gf['loop']:.2f}")

    print("\nbackends on small nets (ms per draw of 2 inputs; * = the one backend='auto' picks):")
    for family, dim in [("dense", 1024), ("random-dag", 256), ("strided-cnn", 32), ("strided-cnn", 64)]:
        small = build_spec(family, dim)
        backends = ["autograd", "manual", "vmap"] if supports_manual(small) else ["autograd", "vmap"]
        auto = choose_backend(small, 2)
        cells = []
        for backend in backends:
            t = (
                best_of(
                    lambda b=backend, s=small: measure([s], samples=16, batch=2, seed=0, backend=b, progress=False), 2
                )
                / 16
            )
            cells.append(f"{backend}{'*' if backend == auto else ' '} {t * 1e3:7.2f}")
        print(f"  {family:12s} dim {dim:5d}: " + "   ".join(cells))


if __name__ == "__main__":
    main()
