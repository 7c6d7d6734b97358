"""Log-log plots of fitted power laws: means with error bars, fitted and predicted lines.

Any command that has ``SlopeFit``s (``verify.fit``) can call ``loglog_plot``; it returns a
matplotlib figure, which ``verify.reporting.atomic_save_figure`` writes.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from verify.fit import SlopeFit, draw_means  # noqa: E402

__all__ = ["loglog_plot"]

# "0.002" rather than "2 x 10^-3" on the value axes: the numbers are read off, not compared.
# Minor ticks of an axis spanning more than a factor 3 are labelled at mantissas 2, 3 and 5 only,
# so labels never overlap.
_plain = FuncFormatter(lambda v, _: f"{v:.3g}")
_minor = FuncFormatter(lambda v, _: f"{v:.3g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v)), 6) in (2, 3, 5) else "")


def _predicted_line(fit: SlopeFit, slope: float, xs: np.ndarray) -> np.ndarray:
    """The predicted power law through the centre of the data (only the slope is predicted)."""
    logx = np.log(fit.xs)
    centre_x = logx.mean()
    centre_y = np.log(fit.means).mean() - fit.log_power * np.log(logx).mean()
    return np.exp(centre_y + slope * (np.log(xs) - centre_x)) * np.log(xs) ** fit.log_power


def loglog_plot(
    fits: Sequence[SlopeFit],
    *,
    predicted: Mapping[str, float] | None = None,
    verdicts: Mapping[str, str] | None = None,
    records: pd.DataFrame | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ncols: int = 4,
    z: float = 1.96,
):
    """One panel per fit: per-x means with +-``z`` standard-error bars, the fitted line and,
    where ``predicted`` names the quantity, the predicted slope drawn through the data's centre.

    ``records`` (long format) adds each draw's mean as faint points; ``verdicts`` goes into
    the panel titles.
    """
    if not fits:
        raise ValueError("loglog_plot needs at least one fit")
    n = len(fits)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.1 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, fit in zip(axes.flat, fits):
        if records is not None:
            pts = draw_means(records, fit.quantity, fit.x)
            ax.scatter(pts[fit.x], pts["value"], s=4, color="0.75", zorder=1, label="draws")
        ax.errorbar(
            fit.xs, fit.means, yerr=z * np.nan_to_num(fit.stderr), fmt="o", color="C0", capsize=3, zorder=3, label="mean"
        )
        grid = np.geomspace(fit.xs.min(), fit.xs.max(), 50)
        ax.plot(grid, fit.predict(grid), color="C0", lw=1.5, zorder=2, label=f"fit {fit.slope:+.3f}")
        label = fit.quantity
        if predicted is not None and fit.quantity in predicted:
            slope = predicted[fit.quantity]
            ax.plot(grid, _predicted_line(fit, slope, grid), "--", color="C3", lw=1.2, zorder=2, label=f"theory {slope:+.2f}")
        if verdicts is not None and fit.quantity in verdicts:
            label += f"\n{verdicts[fit.quantity]}"
        if fit.log_power:
            label += f" (fit / (ln {fit.x})^{fit.log_power:g})"
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_plain)
        low, high = ax.get_ylim()
        # Label minor ticks only where few decades leave room for them.
        span = high / low
        ax.yaxis.set_minor_formatter(_plain if span < 3 else _minor if span < 30 else NullFormatter())
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(xlabel or fit.x)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best")
        ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
