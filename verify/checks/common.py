"""Validation and settings every check config shares, so one rule is stated once."""

from __future__ import annotations

import math
from typing import Any, Sequence

from graphs.errors import InputError
from graphs.rng import check_seed
from graphs.spec import Spec

__all__ = ["MAX_N_BOOT", "check_fit", "check_sampling", "spec_settings"]

# More bootstrap resamples change a 95% interval's ends by less than its Monte Carlo error
# while costing minutes and gigabytes (scipy holds n_resamples x draws values per sample;
# verify.memory.bootstrap estimates it).
MAX_N_BOOT = 1_000_000


def check_sampling(draws: int, batch: int, seed: int) -> None:
    """Weight draws (>= 2: an interval needs spread between draws), inputs per draw, seed."""
    if draws < 2:
        raise InputError(
            f"--draws: {draws} is too small (an interval needs spread between weight draws); give an integer >= 2"
        )
    if batch < 1:
        raise InputError(f"--batch: {batch} is too small; give an integer >= 1")
    check_seed(seed)


def check_fit(margin: float, n_boot: int, *, example: float = 0.05) -> None:
    """The verdict band's half-width and the bootstrap's resamples."""
    if not (math.isfinite(margin) and margin > 0):
        raise InputError(f"--margin: {margin} is not positive; give e.g. --margin {example:g}")
    if n_boot < 100:
        raise InputError(f"--n-boot: {n_boot} is too small for a 95% interval; give an integer >= 100")
    if n_boot > MAX_N_BOOT:
        raise InputError(
            f"--n-boot: {n_boot} resamples would not fit in memory; give at most {MAX_N_BOOT} (2000 is plenty)"
        )


def spec_settings(specs: Sequence[Spec]) -> dict[str, Any]:
    """The architecture part of a config's ``settings()``: family, options, sizes and d."""
    s0 = specs[0]
    return {
        "arch": s0.family,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in s0.family_options().items()},
        "dims": [s.dim for s in specs],
        "d": [s.d for s in specs],
    }
