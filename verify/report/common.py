"""Wording shared by several reports, so one fact is said one way everywhere."""

from __future__ import annotations

import re
import shlex
from typing import Sequence

from verify.results import Claim

__all__ = [
    "HYPOTHESES_LEGEND",
    "VERDICT_RULE",
    "claims_table_rows",
    "hypotheses_cell",
    "settle_command",
    "settle_line",
    "symmetry_cell",
]

VERDICT_RULE = (
    "Verdicts: *consistent* when the whole 95% interval lies in predicted +-{margin:g}; *inconsistent* when the "
    "interval misses that band; *inconclusive* otherwise (the interval's width shrinks like 1/sqrt(draws))."
)

HYPOTHESES_LEGEND = (
    "Hypotheses (THEOREMS.md): H1 ReLU gates independent of the weights; H2 layers; H3 weight variance 2/in-degree; "
    "H4 layers independent; H5 weights from one node uncorrelated; (S) equal path-degree multisets; (S-bounded) "
    "d*P(x,o) bounded uniformly in d, the weaker condition Corollary 6's slopes need."
)


def symmetry_cell(symmetric: bool, method: str, false_positive_bound: float = 0.0) -> str:
    """(S) at one size: exact, certified, or randomised with its false-positive bound."""
    if method == "dag-polynomial":
        return "holds (exact)" if symmetric else "fails (exact)"
    if not symmetric:
        return "fails (certified)"
    return f"holds (randomised, p_fp <= {false_positive_bound:.1e})"


def hypotheses_cell(hypotheses: Sequence[str]) -> str:
    """``H1, H3`` or ``none``; all of H1..H5 together read ``(H)``."""
    items = list(hypotheses)
    if not items:
        return "none"
    if all(f"H{i}" in items for i in range(1, 6)):
        items = ["(H)", *[h for h in items if h not in {f"H{i}" for i in range(1, 6)}]]
    return ", ".join(items)


def claims_table_rows(claims: Sequence[Claim]) -> list[list[str]]:
    """Rows ``claim, predicted, estimate, interval, verdict, broken`` for a generic claims table."""
    from verify.report.markdown import format_number, interval_text

    return [
        [
            c.name,
            format_number(c.predicted),
            format_number(c.estimate),
            interval_text(c.interval, digits=4),
            f"**{c.verdict.value}**",
            hypotheses_cell(c.hypotheses_broken),
        ]
        for c in claims
    ]


def settle_command(command_line: str, draws: int) -> str:
    """``command_line`` with ``--draws`` (or its old name ``--samples``) set to ``draws``."""
    words = shlex.split(command_line)
    out: list[str] = []
    skip = False
    for w in words:
        if skip:
            skip = False
            continue
        if w in ("--draws", "--samples"):
            skip = True
            continue
        if re.match(r"^--(draws|samples)=", w):
            continue
        out.append(w)
    return shlex.join([*out, "--draws", str(int(draws))])


def settle_line(command_line: str, draws: int | None) -> str:
    """The sentence a report and a terminal give under inconclusive verdicts: the exact command
    that would likely settle them (with a results store it computes only the new draws)."""
    if not draws:
        return ""
    return (
        f"To settle the inconclusive verdicts, rerun with more draws: `{settle_command(command_line, draws)}` "
        "(with the same results store, only the new draws are computed)."
    )
