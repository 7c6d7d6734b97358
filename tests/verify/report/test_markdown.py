"""verify.report.markdown and figures: cells that never break a GFM table, signs kept, readable ticks."""

from __future__ import annotations

import math

import pytest

from verify.report.figures import log_ticks
from verify.report.markdown import escape_cell, format_number, interval_text, signed, table
from verify.results import Interval


def test_pipes_are_escaped_and_strings_pass_through():
    text = table(["quantity", "slope"], [["||d_x L||_2", "+0.500"], ["x", 0.25]])
    lines = text.splitlines()
    assert lines[2] == "| \\|\\|d_x L\\|\\|_2 | +0.500 |"
    assert lines[3] == "| x | 0.25 |"
    assert escape_cell("a\\|b") == "a\\|b"  # already escaped stays single-escaped


def test_rows_must_match_headers():
    with pytest.raises(ValueError, match="a row has 1 cells for 2 columns"):
        table(["a", "b"], [[1]])


def test_numbers():
    assert format_number(None) == "-"
    assert format_number(math.nan) == "nan"
    assert format_number(3) == "3"
    assert format_number(123456.0) == "1.235e+05"
    assert format_number(0.5) == "0.5"
    assert signed(0.5) == "+0.500"
    assert signed(-0.25, 2) == "-0.25"
    assert interval_text(Interval(-0.1, 0.2)) == "[-0.100, +0.200]"
    assert interval_text(Interval(math.nan, 1.0)) == "no interval"


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(1.2, 1.9), (0.65, 1.4), (1e-3, 3e-1), (0.05, 0.09), (10, 1e5), (1.01, 1.02), (0.0018, 0.012), (1.397, 1.49)],
)
def test_log_ticks_label_every_range(lo, hi):
    ticks = log_ticks(lo, hi)
    assert len(ticks) >= 3
    assert all(lo <= t <= hi for t in ticks)
    assert ticks == sorted(ticks)


@pytest.mark.parametrize(("lo", "hi"), [(0.205, 0.9), (0.025, 0.16), (0.065, 0.32), (4, 25), (1e-6, 1e3), (0.3, 1.1)])
def test_log_ticks_spread_over_wide_ranges(lo, hi):
    """Labels over most of the axis (log scale), not bunched at one end: a point at the bottom
    of a panel must have a labelled tick near it."""
    ticks = log_ticks(lo, hi)
    assert len(ticks) >= 3
    assert math.log(ticks[-1] / ticks[0]) >= 0.6 * math.log(hi / lo)
    assert all(float(f"{t:.3g}") == t for t in ticks)  # round numbers, no float noise
