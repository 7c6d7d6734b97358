"""The scaling report with five sizes: exact (H) column and section, asymptotic columns, JSON keys."""

from __future__ import annotations

import json

import pytest

from graphs.spec import build_spec
from verify.checks.scaling import ScalingConfig, check_scaling
from verify.report.scaling import render_scaling
from verify.report.writer import figure_png, json_text
from verify.results import RunInfo


@pytest.fixture(scope="module")
def rendered():
    specs = tuple(build_spec("strided-cnn", n, channels=4, strides=(1, 2)) for n in (6, 8, 10, 12, 14))
    result = check_scaling(ScalingConfig(specs, draws=8, batch=1, n_boot=200, quantities=("logit_grad_l2",)))
    return result, render_scaling(result, RunInfo("verify scaling ...", 0, "cpu", 1, "float32"))


def test_markdown_has_the_exact_and_asymptotic_columns(rendered):
    result, r = rendered
    md = r.markdown
    assert "| exact (H) slope | asymptotic beta | 95% CI (beta) | asymptotic verdict |" in md
    row = next(line for line in md.splitlines() if line.startswith("| logit_grad_l2_sq |"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[6] == f"{result.quantity('logit_grad_l2_sq').exact.slope:+.3f}"
    assert cells[7] != "-"  # five sizes: beta is fitted
    exact = md.split("## Exact (H) curve against Monte Carlo", 1)[1].split("## Per-size", 1)[0]
    size_rows = [line for line in exact.splitlines() if line.startswith(("| 6 |", "| 14 |"))]
    assert len(size_rows) == 2
    assert "likely cause" in exact
    assert "finite-size fit gives beta" in exact
    assert "c d^(-0.5)" in md  # zero padding: the border correction


def test_json_carries_exact_and_asymptotic_numbers(rendered):
    result, r = rendered
    out = json.loads(json_text(r.json))
    sq = next(q for q in out["quantities"] if q["name"] == "logit_grad_l2_sq")
    assert sq["exact"]["values"] == pytest.approx([s.init_sq for s in result.status])
    assert sq["asymptotic"]["verdict"] in ("consistent", "inconsistent", "inconclusive")
    assert out["finite_size"]["exponent"] == -0.5
    assert len(out["second_moments"]) == 5
    assert out["asymptotic_note"] is None
    assert [c["name"] for c in out["claims"]][-1] == "second_moments"


def test_figure_renders(rendered):
    _, r = rendered
    (fig,) = r.figures.values()
    assert len(figure_png(fig)) > 1000
