"""Progress: one line per phase of a run on a terminal, nothing on a pipe.

A run goes through phases (the exact side, the Monte Carlo, the bootstrap fits, the report
and its plots). ``Progress.phase`` opens one stderr line for a phase, rewrites it in place as
the phase advances (``Phase.step``: "size 2/4, dim 128") and ends it with the phase's wall
time, so a finished run leaves one line per phase:

    verify scaling: exact side: (S), H3, d*P(x,o), Eq. 13 at 4 sizes: 1.2 s
    verify scaling: Monte Carlo, 160 draws x 2 inputs at 4 sizes: 36.2 s
    verify scaling: bootstrap fits of 8 quantities (2000 resamples): 1.4 s
    verify scaling: Monte Carlo against Eq. 13 at 4 sizes: 0.1 s
    verify scaling: report and plots: 3.1 s

A phase whose work draws its own bars (the Monte Carlo's per-size tqdm bars, which clear
themselves) says ``bars=True``: its line is written when it ends, where the bars were.
Disabled (a pipe, a log file, ``--json``), nothing is written at all.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Iterator

__all__ = ["Phase", "Progress", "as_progress"]

_CLEAR = "\r\033[K"  # back to the line's start, erase it (every terminal tqdm supports does this)


class Phase:
    """An open phase: ``step(text)`` rewrites its line with the current position."""

    def __init__(self, progress: Progress, what: str, bars: bool) -> None:
        self.progress = progress
        self.what = what
        self.bars = bars
        self.start = time.perf_counter()

    def step(self, text: str) -> None:
        if self.progress.enabled and not self.bars:
            self.progress.write(f"{_CLEAR}{self.progress.name}: {self.what}: {text} ...")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


class Progress:
    """Phase lines of one command (``name``, e.g. ``verify scaling``) on ``stream`` (stderr)."""

    def __init__(self, name: str = "verify", enabled: bool = False, stream: IO[str] | None = None) -> None:
        self.name = name
        self.enabled = bool(enabled)
        self.stream = stream

    def write(self, text: str) -> None:
        out = self.stream if self.stream is not None else sys.stderr
        out.write(text)
        out.flush()

    @contextlib.contextmanager
    def phase(self, what: str, *, bars: bool = False) -> Iterator[Phase]:
        """One line for the phase ``what`` (module docstring); cleared if the phase fails, so an
        error message starts on a line of its own."""
        ph = Phase(self, what, bars)
        if self.enabled and not bars:
            self.write(f"{self.name}: {what} ...")
        try:
            yield ph
        except BaseException:
            if self.enabled and not bars:
                self.write(_CLEAR)
            raise
        if self.enabled:
            self.write(f"{_CLEAR}{self.name}: {what}: {ph.seconds:.1f} s\n")


def as_progress(progress: bool | Progress, name: str) -> Progress:
    """A check's ``progress`` argument as a ``Progress``: ``True`` gives phase lines named
    ``name`` on stderr, ``False`` none, a ``Progress`` is used as it is."""
    if isinstance(progress, Progress):
        return progress
    return Progress(name, bool(progress))
