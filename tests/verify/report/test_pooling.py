"""The pooling report rendered from a result: markdown, JSON envelope with today's keys, figure."""

from __future__ import annotations

import json
import math
import re

import pytest

from tests.gfm import assert_tables_render
from verify.checks.pooling import PoolingConfig, check_pooling
from verify.report.pooling import pooling_figure, render_pooling
from verify.report.writer import figure_png, json_text
from verify.results import RunInfo

OLD_KEYS = (
    "arch",
    "padding",
    "x",
    "xs",
    "windows",
    "dims",
    "d",
    "channels",
    "seed",
    "samples",
    "batch",
    "h3_violation_fraction",
    "quantities",
    "second_moments",
    "theorem11",
)


@pytest.fixture(scope="module")
def result():
    cfg = PoolingConfig(dim=32, pools=(1, 2, 4), channels=8, strides=(1, 2, 2), batch=2, draws=16, n_boot=300)
    return check_pooling(cfg)


@pytest.fixture(scope="module")
def rendered(result):
    run = RunInfo("verify pooling --dims 32", 0, "cpu", 1, "float32", {"torch": "x"}, 1.5, result.config.settings())
    return render_pooling(result, run)


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_markdown_sections_and_tables(rendered):
    md = rendered.markdown
    for text in (
        "# Average pooling: Theorems 10 and 11 on avgpool-cnn",
        "## Settings",
        "- command: `verify pooling --dims 32`",
        "## Verdicts",
        "## Theorem 10: slope against prod a_i",
        "## Monte Carlo against the exact (H) value (Eq. 13)",
        "## Theorem 11: strided against pooled",
        "(pooling-avgpool-cnn.png)",
        "Stouffer",  # the report says what changed and why
        "Draws: 16 per net. The default is 256",
    ):
        assert text in md, text
    # GFM: every row of a table has as many unescaped | as its header
    blocks, current = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    assert len(blocks) == 5
    for block in blocks:
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in block}
        assert len(counts) == 1, block


def test_theorem11_has_one_verdict(rendered, result):
    section = rendered.markdown.split("## Theorem 11", 1)[1]
    assert "CI contains" not in section
    assert "verdict on e" not in section
    header = _table_rows(section)[0]
    assert header.count("verdict") == 1
    row = _table_rows(section)[2]
    assert f"**{result.theorem11.claim.verdict.value}**" in row
    assert "One rule, one verdict" in section


def test_json_envelope_keeps_todays_keys(rendered, result):
    out = json.loads(json_text(rendered.json))
    assert out["command"] == "pooling"
    assert {"version", "run", "claims", "verdicts"} <= set(out)
    for key in (*OLD_KEYS, "draws", "margin", "n_boot"):
        assert key in out, key
    assert out["x"] == "prod_a"
    assert out["xs"] == [4, 16, 64]
    assert out["windows"] == [[1, 2], [2, 2], [4, 2]]
    assert out["dims"] == [32]
    assert out["d"] == [3072]
    assert out["channels"] == 8
    assert out["samples"] == out["draws"] == 16
    assert out["n_boot"] == 300
    norm, sq = out["quantities"]
    assert norm["name"] == "logit_grad_l2"
    assert norm["predicted_slope"] == -0.5
    assert sq["name"] == "logit_grad_l2_sq"
    assert sq["predicted_slope"] == -1.0
    assert norm["h_predicted"] == pytest.approx([(2 / a) ** 0.5 for a in (4, 16, 64)], rel=1e-12)
    assert sq["h_predicted"] == pytest.approx([2 / a for a in (4, 16, 64)], rel=1e-12)
    assert norm["h_slope"] == pytest.approx(-0.5, abs=1e-12)
    assert norm["ci_low"] <= norm["slope"] <= norm["ci_high"]
    assert [c["name"] for c in out["claims"]] == [c.name for c in result.claims]
    assert norm["verdict"] == out["claims"][0]["verdict"]
    assert len(out["second_moments"]) == 3
    assert {"rel_init_interval", "culprit", "z_init"} <= set(out["second_moments"][0])
    t11 = out["theorem11"]
    for key in (
        "strided",
        "pooled",
        "prod_a",
        "ratio",
        "ci_low",
        "ci_high",
        "predicted",
        "h_ratio_he",
        "h_ratio_init",
        "exponent",
        "exponent_ci",
        "verdict",
        "contains_predicted",
        "paired",
        "strided_mc_norm",
        "pooled_mc_norm",
        "second_moments",
    ):
        assert key in t11, key
    assert t11["verdict"] == out["claims"][3]["verdict"]
    assert t11["exponent"] == pytest.approx(math.log(t11["ratio"]) / math.log(16))
    assert out["second_moments_mean"]["init"]["paired"] is True
    assert out["run"]["settings"]["draws"] == 16


def test_figure_has_three_readable_panels(result):
    fig = pooling_figure(result)
    axes = fig.axes
    assert len(axes) == 3
    for ax in axes[:2]:
        assert ax.get_xscale() == "log"
        assert ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "16", "64"]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert len([t for t in labels if t]) >= 2
    assert [t.get_text() for t in axes[2].get_xticklabels()] == ["4", "16", "64"]
    assert len(figure_png(fig)) > 1000


def test_summary_lists_the_claims(rendered):
    for name in ("logit_grad_l2", "second_moments", "theorem11_ratio"):
        assert name in rendered.summary


def test_tables_render_on_github(rendered):
    assert_tables_render(rendered.markdown)
