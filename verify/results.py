"""The shared result types every check returns: intervals, verdicts, claims, run records.

Modelled on scipy.stats' result objects: frozen dataclasses that carry numbers, never
formatting. Reports (``verify.report``) and ``--json`` objects are rendered from them.

One verdict vocabulary for every claim the toolkit makes:

- ``consistent``: the evidence agrees with the prediction (an interval lies inside the band
  around the predicted value; a family of hypothesis tests does not reject);
- ``inconsistent``: the evidence contradicts it (the interval misses the band; the tests
  reject);
- ``inconclusive``: neither, with what would settle it in the claim's note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Sequence

__all__ = ["Claim", "Interval", "RunInfo", "Verdict", "claims_summary"]


class Verdict(str, Enum):
    """The three verdicts (module docstring); the value is the word reports print."""

    CONSISTENT = "consistent"
    INCONSISTENT = "inconsistent"
    INCONCLUSIVE = "inconclusive"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[low, high]`` at ``level``, made by ``method``.

    Bounds are NaN when no interval exists (a single draw, a degenerate bootstrap).
    """

    low: float
    high: float
    level: float = 0.95
    method: str = "BCa bootstrap"

    @property
    def finite(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.finite and self.low <= value <= self.high

    def map(self, fn) -> Interval:
        """The interval of ``fn(estimate)`` for an increasing ``fn`` (NaN bounds stay NaN)."""

        def f(v: float) -> float:
            try:
                return float(fn(v)) if math.isfinite(v) else math.nan
            except (ValueError, ZeroDivisionError):
                return math.nan

        return Interval(f(self.low), f(self.high), self.level, self.method)

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "level": self.level, "method": self.method}

    @classmethod
    def none(cls, method: str = "none") -> Interval:
        return cls(math.nan, math.nan, 0.95, method)


@dataclass(frozen=True)
class Claim:
    """One statement of the paper checked against evidence.

    ``predicted`` and ``estimate`` are numbers on the same scale (a slope, a ratio, a
    p-value's complement is never used: a test family's estimate is its smallest adjusted
    p-value); ``hypotheses_needed`` are what the theorem assumes for this statement,
    ``hypotheses_broken`` those of them that the checked network violates, so a verdict is
    never read without them.
    """

    name: str
    statement: str
    predicted: float | None
    estimate: float | None
    interval: Interval
    verdict: Verdict
    hypotheses_needed: tuple[str, ...] = ()
    hypotheses_broken: tuple[str, ...] = ()
    note: str = ""

    @property
    def implied(self) -> bool:
        """Whether the theorem implies the prediction for this net (no needed hypothesis broken)."""
        return not set(self.hypotheses_broken) & set(self.hypotheses_needed)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Interval):
                value = value.to_dict()
            elif isinstance(value, Verdict):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass(frozen=True)
class RunInfo:
    """How a result was made: what the JSON envelope's ``run`` and a report's header show."""

    command: str
    seed: int | None
    device: str
    threads: int
    dtype: str
    versions: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = math.nan
    settings: dict[str, Any] = field(default_factory=dict)
    # How much of the run the wall time covers (draws read from a results store), shown beside
    # it; like the wall time, not part of what a rerun must reproduce, so not in ``to_dict``.
    wall_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "command_line": self.command,
            "seed": self.seed,
            "device": self.device,
            "threads": self.threads,
            "dtype": self.dtype,
            "torch_version": self.versions.get("torch"),
            "versions": dict(self.versions),
            "wall_seconds": self.wall_seconds,
            "settings": dict(self.settings),
        }


def claims_summary(claims: Sequence[Claim]) -> dict[str, int]:
    """How many claims got each verdict (every verdict listed, zeros included)."""
    return {v.value: sum(1 for c in claims if c.verdict is v) for v in Verdict}
