"""``render_first_order``: markdown, figure and JSON from a ``FirstOrderResult`` (synthetic records)."""

from __future__ import annotations

import json
import re
import sys

import matplotlib
import pytest

from tests.gfm import assert_tables_render
from tests.verify.checks.test_first_order import _config, _synthetic
from verify.checks.first_order import check_first_order
from verify.report import json_text
from verify.report.first_order import render_first_order
from verify.results import RunInfo

OLD_KEYS = [
    "arch",
    "dims",
    "d",
    "eps_inf",
    "norms",
    "samples",
    "batch",
    "seed",
    "dtype",
    "pgd",
    "lemma2",
    "largest_eps_within_10pct",
    "prop3",
    "prop3_order",
    "snr",
    "remark1",
    "report",
    "figure",
    "elapsed_s",
]


@pytest.fixture(scope="module")
def rendered():
    config = _config()
    result = check_first_order(config, records=_synthetic(config, one_step=0.5))
    run = RunInfo(
        command="verify first-order --arch dense", seed=0, device="cpu", threads=1, dtype="float64", wall_seconds=1.5
    )
    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    out = render_first_order(result, run)
    assert matplotlib.get_backend() == backend
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules
    return result, out


def _tables(markdown: str) -> list[list[str]]:
    tables, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_sections_and_tables(rendered):
    _, out = rendered
    text = out.markdown
    assert out.stem == "first-order-dense"
    for section in ("## Settings", "## Verdicts", "## Lemma 2", "## Proposition 3", "## Eq. 3", "## Remark 1"):
        assert section in text
    assert "![ratio against eps](first-order-dense.png)" in text
    assert "- command: `verify first-order --arch dense`" in text
    tables = _tables(text)
    assert len(tables) == 8  # verdicts, Lemma 2 (ratios, reach, PGD limits), Prop. 3 (x2), SNR, Remark 1
    for tab in tables:
        # GFM splits a cell at every unescaped |: every row must have the header's cell count.
        counts = {len(re.findall(r"(?<!\\)\|", row)) for row in tab}
        assert len(counts) == 1, tab


def test_verdict_words(rendered):
    _, out = rendered
    text = out.markdown
    assert "| lemma2 one-step p=inf d=16 | 1 | 0.5" in text
    assert "**inconsistent**" in text
    assert "| prop3 p=2 d=16 | > 1 |" in text
    for row in text.splitlines():
        assert not row.rstrip().endswith("| o(eps) |")
        assert "not o(eps)" not in row
    assert out.summary.splitlines()[-1] == "11 consistent, 4 inconsistent"


def test_json_envelope_keeps_the_old_keys(rendered):
    result, out = rendered
    obj = json.loads(json_text(out.json))
    assert list(obj)[:5] == ["command", "version", "run", "claims", "verdicts"]
    assert obj["command"] == "first-order"
    for key in OLD_KEYS:
        assert key in obj, key
    assert obj["samples"] == obj["draws"] == 20
    assert obj["d"] == [16, 64]
    assert obj["norms"] == ["inf", "2"]
    assert set(obj["pgd"]["linear_model_limit"]) == {"inf", "2"}
    assert obj["pgd"]["linear_model_limit"] == result.limits[64]
    assert obj["run"]["settings"] == {}
    assert obj["run"]["dtype"] == "float64"
    assert len(obj["claims"]) == len(result.claims)
    assert obj["verdicts"]["inconsistent"] == 4
    row = obj["lemma2"][0]
    assert {"d", "norm", "attack", "eps_inf", "eps", "ratio", "ci_low", "ci_high", "draws"} <= set(row)
    assert {r["verdict"] for r in obj["prop3_order"]} == {"consistent"}
    assert obj["report"] == "first-order-dense.md"
    assert obj["figure"] == "first-order-dense.png"
    assert obj["elapsed_s"] == 1.5


def test_figure_has_both_attack_panels(rendered):
    _, out = rendered
    (fig,) = out.figures.values()
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("one-step" in t for t in titles)
    assert any("PGD" in t for t in titles)
    assert fig.legends, "the data legend sits below the panels"


def test_tables_render_on_github(rendered):
    assert_tables_render(rendered[1].markdown)
