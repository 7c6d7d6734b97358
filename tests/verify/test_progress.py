"""Progress lines: one per phase on a terminal, rewritten in place, nothing when disabled."""

from __future__ import annotations

import io

import pytest

from verify.progress import Progress, as_progress


def _final_lines(text: str) -> list[str]:
    return [line.rsplit("\r\033[K", 1)[-1] for line in text.split("\n") if line]


def test_one_line_per_phase_with_its_time():
    out = io.StringIO()
    prog = Progress("verify demo", True, out)
    with prog.phase("exact side") as ph:
        ph.step("size 1/2")
        ph.step("size 2/2")
    with prog.phase("Monte Carlo", bars=True) as ph:
        ph.step("ignored: the bars show it")
    text = out.getvalue()
    assert text.count("\n") == 2
    assert "size 2/2" in text
    assert "ignored" not in text
    lines = _final_lines(text)
    assert lines[0].startswith("verify demo: exact side: ")
    assert lines[0].endswith(" s")
    assert lines[1].startswith("verify demo: Monte Carlo: ")


def test_a_failing_phase_clears_its_line_for_the_error():
    out = io.StringIO()
    prog = Progress("verify demo", True, out)
    with pytest.raises(ValueError, match="boom"), prog.phase("fits"):
        raise ValueError("boom")
    assert out.getvalue().endswith("\r\033[K")
    assert "\n" not in out.getvalue()


def test_disabled_writes_nothing():
    out = io.StringIO()
    prog = as_progress(False, "verify demo")
    prog.stream = out
    with prog.phase("exact side") as ph:
        ph.step("size 1/2")
    assert out.getvalue() == ""
    assert as_progress(prog, "other") is prog
