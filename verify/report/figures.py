"""Figures: matplotlib without pyplot, so importing or running a check never changes the
user's backend or global state; plus the log-log panel every power-law plot uses.

Axes are labelled for reading numbers off: every log axis gets two to six ticks at round
values spread over its range (a narrow range, such as a gradient norm between 1.2 and 1.9,
still gets labels), and the x ticks sit at the measured sizes, rotated when their labels
would not fit side by side.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["label_log_axes", "log_ticks", "loglog_grid", "loglog_panel", "new_figure"]


def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, squeeze: bool = False, **kwargs
):
    """A ``matplotlib.figure.Figure`` and its axes array (no pyplot, no backend switch)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or (3.8 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)
    return fig, axes


# Mantissa sets for log-axis ticks, sparsest first: decades, then ever finer round numbers.
_MANTISSAS = (
    (1.0,),
    (1.0, 3.0),
    (1.0, 2.0, 5.0),
    (1.0, 2.0, 3.0, 5.0),
    (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
    (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
)
# A tick set must span this share of the axis (in log scale): labels only at the top of a panel
# leave the lower points unreadable.
_MIN_COVER = 0.6


def log_ticks(lo: float, hi: float, *, max_ticks: int = 6) -> list[float]:
    """Round tick values inside ``[lo, hi]`` (both > 0) for a log axis: the sparsest set of
    round numbers (decades, 1-3, 1-2-5, 1-2-3-5, 1-1.5-2-3-5-7, ... per decade) with at least three
    ticks spanning 60% of the axis in log scale, so every part of the panel has a label near
    it; evenly spaced round numbers (``MaxNLocator``) over ranges too narrow for any."""
    from matplotlib.ticker import MaxNLocator

    if not (lo > 0 and hi > lo):
        return [lo] if lo > 0 else []
    span = math.log(hi / lo)
    best: list[float] = []
    best_cover = -1.0
    for mantissas in _MANTISSAS:
        decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
        ticks = _thin(
            [v for e in decades for m in mantissas if lo <= (v := float(f"{m * 10.0**e:.6g}")) <= hi], max_ticks
        )
        cover = math.log(ticks[-1] / ticks[0]) / span if len(ticks) >= 2 else 0.0
        if len(ticks) >= 3 and cover >= _MIN_COVER:
            return ticks
        if len(ticks) >= 2 and cover > best_cover:
            best, best_cover = ticks, cover
    linear: list[float] = []
    for nbins in (4, 6, 8):  # evenly spaced round numbers, at least three when the range allows
        linear = [
            float(f"{v:.6g}")
            for v in MaxNLocator(nbins=nbins, steps=[1, 2, 5, 10]).tick_values(lo, hi)
            if lo <= v <= hi and v > 0
        ]
        if len(linear) >= 3:
            break
    linear_cover = math.log(linear[-1] / linear[0]) / span if len(linear) >= 2 else 0.0
    ticks = linear if linear_cover > best_cover else best
    return ticks if len(ticks) >= 2 else [float(f"{lo:.3g}"), float(f"{hi:.3g}")]


def _thin(ticks: list[float], max_ticks: int) -> list[float]:
    if len(ticks) <= max_ticks:
        return ticks
    step = math.ceil(len(ticks) / max_ticks)
    return ticks[::step]


def _fmt(v: float) -> str:
    # Ticks are round numbers by construction: print them exactly (1.375 is not "1.38").
    if v >= 1e5 or v < 1e-3:
        return f"{v:.3g}"
    return f"{v:.6g}"


def label_log_axes(ax, xs: Sequence[float] | np.ndarray | None = None) -> None:
    """Readable ticks on a log-log axes (module docstring); call after plotting."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    lo, hi = ax.get_ylim()
    ticks = log_ticks(lo, hi)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if xs is not None:
        xs = sorted(float(x) for x in xs)
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v < 1e6 else f"{v:.3g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        longest = max(len(f"{x:g}") for x in xs)
        if len(xs) * longest > 20:
            for label in ax.get_xticklabels():
                label.set_rotation(35)
                label.set_horizontalalignment("right")


def loglog_panel(
    ax,
    fit,
    *,
    predicted: float | None = None,
    verdict: str | None = None,
    draw_points: tuple[np.ndarray, np.ndarray] | None = None,
    exact: tuple[np.ndarray, np.ndarray, str] | None = None,
    xlabel: str | None = None,
    z: float = 1.96,
) -> None:
    """One power law: per-x means with +-``z`` standard-error bars, the fitted line, the
    predicted slope through the data's centre, optional per-draw points and an exact curve
    (``(xs, values, label)``, dashed)."""
    if draw_points is not None:
        ax.scatter(draw_points[0], draw_points[1], s=4, color="0.75", zorder=1, label="draws")
    ax.errorbar(
        fit.xs, fit.means, yerr=z * np.nan_to_num(fit.stderr), fmt="o", color="C0", capsize=3, zorder=3, label="mean"
    )
    grid = np.geomspace(fit.xs.min(), fit.xs.max(), 50)
    ax.plot(grid, fit.predict(grid), color="C0", lw=1.5, zorder=2, label=f"fit {fit.slope:+.3f}")
    if predicted is not None:
        logx = np.log(fit.xs)
        corr = fit.factor(fit.xs)
        centre = np.mean(np.log(fit.means) - np.log(corr))
        line = np.exp(centre + predicted * (np.log(grid) - logx.mean())) * fit.factor(grid)
        ax.plot(grid, line, ":", color="C3", lw=1.4, zorder=2, label=f"theory {predicted:+.2f}")
    if exact is not None:
        ax.plot(exact[0], exact[1], "--", color="C2", lw=1.2, zorder=2, label=exact[2])
    title = fit.quantity
    if verdict is not None:
        title += f"\n{verdict}"
    if fit.correction:
        title += f" (fit of E[Q] / {fit.correction})"
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel or fit.x)
    ax.tick_params(labelsize=7)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    label_log_axes(ax, fit.xs)


def loglog_grid(n: int, *, ncols: int = 4):
    """A figure with ``n`` panels in rows of ``ncols`` (extra axes hidden); returns (fig, axes)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(3.9 * ncols, 3.4 * nrows))
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]
