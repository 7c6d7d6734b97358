"""The engine on a GPU, against references measured on the same card in the same run.

On the paper's 3 x 256 x 256 strided CNN (64 channels), with the group of draws the engine
picks itself (``verify.engine.group_size``):

1. fp32 matmul rate (``torch.mm`` 8192^2, TF32 off; also with TF32 and in bf16): what the
   card can do;
2. the engine: ``verify.engine.measure`` over ``--draws`` draws, whole draws (weights and
   inputs drawn on CPU threads ahead of the GPU, vmap groups replayed from CUDA graphs, the
   quantities back on the host): ms per draw (goal <= 2.5) and achieved GFLOP/s as a multiple
   of the fp32 matmul (goal >= 0.2); FLOPs counted as in ``bench_engine.py`` (3 x forward);
3. a plain per-sample ``autograd.grad`` loop on an ``nn.Module`` on the same card: engine /
   loop (goal >= 5);
4. what each lever is worth, same draws: without CUDA graphs, without drawing ahead, and the
   CPU's manual backend moved to the GPU one draw at a time (the engine before this issue);
5. precision: fp32 (TF32 off), tf32 and bf16, each timed and its largest per-sample error
   against float64 on the same draw (``verify.engine.precision_error``).

``--device cpu`` runs the same code path on a CPU at a small size (a dry run of the script;
its figures say nothing about a GPU).

    python bench/bench_gpu.py [--n 256] [--draws 256] [--rounds 3]
    python bench/bench_gpu.py --device cpu --n 32 --draws 16 --rounds 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from graphs.spec import build_spec  # noqa: E402
from verify.engine import choose_backend, forward_flops, group_size, measure, precision_error  # noqa: E402
from verify.model import build_module  # noqa: E402
from verify.runtime import runtime  # noqa: E402
from verify.sampling import sample_inputs, sample_labels  # noqa: E402


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def best_time(fn, dev: torch.device, rounds: int) -> float:
    fn()
    sync(dev)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def matmul_rate(dev: torch.device, dtype: torch.dtype, tf32: bool, rounds: int) -> float:
    n = 8192 if dev.type == "cuda" else 1024
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        t = best_time(lambda: torch.mm(a, b), dev, max(3, rounds))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2 * n**3 / t / 1e9


def loop_rate(spec, dev: torch.device, batch: int, rounds: int) -> float:
    """Seconds per sample of the plain per-sample autograd loop."""
    net = build_module(spec, seed=0, draw=0, device=dev)
    x = sample_inputs(spec, 0, 0, batch, device=dev)
    y = sample_labels(spec, 0, 0, batch, device=dev)

    def run():
        for i in range(batch):
            xi = x[i : i + 1].clone().requires_grad_(True)
            logits = net(xi)
            loss = F.cross_entropy(logits, y[i : i + 1])
            torch.autograd.grad(loss, xi, retain_graph=True)
            torch.autograd.grad(logits[0, y[i]], xi)

    return best_time(run, dev, rounds) / batch


def engine_time(
    spec, args, *, precision: str = "fp32", graphs: bool = True, backend: str = "auto", workers: int | None = None
) -> float:
    """Seconds per draw of ``measure`` over ``args.draws`` draws (best of rounds)."""
    with runtime(args.device, precision=precision, cuda_graphs=graphs, prefetch=workers) as rt:

        def run():
            measure([spec], draws=args.draws, batch=args.batch, seed=0, rt=rt, backend=backend)

        return best_time(run, rt.device, args.rounds) / args.draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default) or cpu for a dry run")
    parser.add_argument("--n", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--draws", type=int, default=256, help="draws per engine timing (default 256)")
    parser.add_argument("--batch", type=int, default=2, help="inputs per draw (default 2, the CLI default)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds, best kept (default 3)")
    parser.add_argument("--loop-samples", type=int, default=16, help="samples of the per-sample loop (default 16)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --device cpu for a dry run of the code path")
    dev = torch.device(args.device)
    spec = build_spec("strided-cnn", args.n)
    per_sample = 3 * forward_flops(spec)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (dry run: not GPU figures)"
    print(f"device: {name}; torch {torch.__version__}")
    print(f"net: {spec.describe()}; {per_sample / 1e9:.3f} GFLOP per sample (forward + 2 backward)")

    mm32 = matmul_rate(dev, torch.float32, False, args.rounds)
    mm_tf32 = matmul_rate(dev, torch.float32, True, args.rounds) if dev.type == "cuda" else float("nan")
    mm_bf16 = matmul_rate(dev, torch.bfloat16, False, args.rounds) if dev.type == "cuda" else float("nan")
    print(f"\nmatmul: fp32 (TF32 off) {mm32:9.0f} GFLOP/s;  TF32 {mm_tf32:9.0f};  bf16 {mm_bf16:9.0f}")

    free = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else None
    g = group_size(spec, args.batch, draws=args.draws, device=dev)
    t_engine = engine_time(spec, args)
    gf = per_sample * args.batch / t_engine / 1e9
    backend = choose_backend(spec, args.batch, "auto", dev)
    if backend == "vmap":
        room = "" if free is None else f" ({free / 2**30:.0f} GiB free)"
        how = f"vmap groups of {g} draws{room}, CUDA graphs, draws sampled ahead"
    else:
        how = f"{backend} backend, one draw at a time"
    print(f"\nengine (auto: {how}):")
    print(f"  {t_engine * 1e3:8.2f} ms per draw of {args.batch} inputs, sampling included   (goal <= 2.5 ms at 256 px)")
    print(f"  {gf:8.0f} GFLOP/s = {gf / mm32:.3f} x fp32 matmul                      (goal >= 0.2)")

    with runtime(args.device):  # fp32 with TF32 off, like the engine
        t_loop = loop_rate(spec, dev, args.loop_samples, args.rounds)
    print(
        f"per-sample autograd.grad loop: {t_loop * 1e3:8.2f} ms per sample;  engine / loop = {t_loop * args.batch / t_engine:.1f}x   (goal >= 5)"
    )

    print("\nlevers (same draws; x = that time / the engine's):")
    for label, kw in (
        ("without CUDA graphs", {"graphs": False}),
        ("without drawing ahead (draws in line)", {"workers": 0}),
        ("manual backend, one draw at a time", {"backend": "manual"}),
    ):
        t = engine_time(spec, args, **kw)
        print(f"  {label:40s} {t * 1e3:8.2f} ms per draw   {t / t_engine:5.2f} x")

    print("\nprecision (time per draw, largest per-sample error against float64 on draw 0):")
    for precision in ("fp32", "tf32", "bf16"):
        t = engine_time(spec, args, precision=precision)
        with runtime(args.device, precision=precision) as rt:
            err = precision_error(spec, seed=0, batch=args.batch, rt=rt)
        worst = max(err.by_quantity, key=lambda q: err.by_quantity[q])
        print(
            f"  {precision}: {t * 1e3:8.2f} ms per draw ({t / t_engine:4.2f} x fp32); error {err.max_relative:.1e} (worst: {worst})"
        )


if __name__ == "__main__":
    main()
