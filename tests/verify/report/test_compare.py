"""``render_compare``: the slopes table, the hypotheses per architecture, the JSON, the shared-axes plot."""

from __future__ import annotations

import json

import pytest

from verify.checks.compare import QUANTITIES, CompareConfig, check_compare
from verify.report import json_text
from verify.report.compare import render_compare
from verify.results import RunInfo

RUN = RunInfo(command="verify compare", seed=0, device="cpu", threads=1, dtype="float32")
ARCHS = ("strided-cnn:channels=2:strides=1.2", "resnet:width=2:blocks=1:stage-strides=2:padding=circular")


@pytest.fixture(scope="module")
def rendered():
    return render_compare(check_compare(CompareConfig(ARCHS, (8, 16), draws=4, batch=1, n_boot=200)), RUN)


def test_markdown_has_one_row_per_architecture_in_each_table(rendered):
    text = rendered.markdown
    assert "## Slopes against d" in text
    assert "## Hypotheses of each architecture" in text
    for label in ARCHS:
        assert text.count(f"| {label} |") >= 3  # options, slopes, hypotheses (and per-size means)
    assert "vuln_linf slope [95% CI] verdict" in text
    assert "What explains each result" in text
    assert "![every architecture on shared log axes](compare.png)" in text


def test_json_carries_every_fit_and_the_exact_side(rendered):
    data = json.loads(json_text(rendered.json))
    assert data["command"] == "compare"
    assert [a["label"] for a in data["archs"]] == list(ARCHS)
    resnet = data["archs"][1]
    assert set(resnet["quantities"]) == set(QUANTITIES)
    # circular padding and a global average pooling head: Eq. 13 falls like 1/sqrt(d)
    assert resnet["eq13_slope"] == pytest.approx(-0.5, abs=1e-9)
    assert resnet["exact_side"] is True
    assert "H1" in resnet["hypothesis_notes"]
    assert len(data["claims"]) == 4


def test_one_figure_with_every_architecture_on_each_panel(rendered):
    (fig,) = rendered.figures.values()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(QUANTITIES)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [*ARCHS, "theorems' slope"]
    for ax in panels:
        assert ax.get_xscale() == "log"
        assert ax.get_yscale() == "log"
        slopes = [t.get_text() for t in ax.texts]
        assert len(slopes) == len(ARCHS)
        assert all(t[0] in "+-" for t in slopes)
