"""Training-step speed of ``verify trained``'s nets: channels-last against the default layout.

One training step (forward, backward, Adam step) of paper-net on a batch of 1-channel images,
for each arm's objective (plain cross-entropy, the gradient penalty of Eq. 4 with double
backprop, Eq. 5 with a 2-step PGD attack), in the default NCHW layout and in the channels-last
layout ``verify.training`` uses. The two layouts are interleaved over ``--repeats`` rounds and
the best CPU time of each is kept (process time, so that load from other processes on a shared
machine counts less), and the ratio is printed.

    python bench/bench_training.py [--n 112] [--channels 8] [--batch 32] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from graphs.rng import Stream, generator_for
from verify.attacks import pgd_attack
from verify.losses import augmented_loss, penalized_loss
from verify.training import SpecFactory, channels_last_module


def _step(module, opt, x, y, method: str, gen: torch.Generator) -> None:
    def loss_fn(z):
        return F.cross_entropy(module(z), y, reduction="none")

    if method == "gp":
        loss = penalized_loss(loss_fn, x, 0.03, 1.0).mean()
    elif method == "pgd":
        delta = pgd_attack(loss_fn, x, math.inf, 0.03, steps=2, step_size=0.6, generator=gen)
        loss = augmented_loss(loss_fn, x, 0.03, math.inf, delta=delta / 0.03).mean()
    else:
        loss = loss_fn(x).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=112)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    factory = SpecFactory("paper-net", (("channels", args.channels), ("dilation_base", 28)), 1, 10)
    x = torch.randn((args.batch, 1, args.n, args.n), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(1))
    print(f"paper-net, {args.channels} channels, {args.n} px, batch {args.batch}, {args.threads} thread(s)")
    for method in ("plain", "gp", "pgd"):
        best = {"nchw": math.inf, "channels-last": math.inf}
        for _ in range(args.repeats):
            for layout in best:
                module = factory.build(args.n, True, generator_for(Stream.TRAIN_INIT, 0, 0), torch.device("cpu"))
                xb = x
                if layout == "channels-last":
                    module = channels_last_module(module, (1, args.n, args.n))
                    xb = x.contiguous(memory_format=torch.channels_last)
                opt = torch.optim.Adam(module.parameters(), lr=1e-3)
                gen = torch.Generator().manual_seed(2)
                _step(module, opt, xb, y, method, gen)  # warm-up
                t = time.process_time()
                _step(module, opt, xb, y, method, gen)
                best[layout] = min(best[layout], time.process_time() - t)
        print(
            f"  {method:5s}: NCHW {best['nchw'] * 1e3:7.1f} ms, channels-last {best['channels-last'] * 1e3:7.1f} ms "
            f"(x{best['nchw'] / best['channels-last']:.2f})"
        )


if __name__ == "__main__":
    main()
