"""verify.report.lemma9: the markdown, the JSON envelope with the old keys, the terminal summary."""

from __future__ import annotations

import json

import pytest

from graphs.spec import build_spec
from tests.gfm import assert_tables_render
from verify.checks.lemma9 import Lemma9Config, check_lemma9
from verify.report.lemma9 import render_lemma9
from verify.report.writer import json_text
from verify.results import RunInfo

RUN = RunInfo(command="verify lemma9 --arch dense --dims 12", seed=0, device="cpu", threads=1, dtype="float64")
KW = {"draws": 40, "max_inputs": 2, "max_paths": 10, "max_pairs": 30}

OLD_ROW_KEYS = {
    "dim", "d", "spec", "draws", "inputs", "paths", "tested_paths", "tested_pairs", "local_pairs", "pure_pool_paths",
    "pure_pool_constant", "rejections", "min_p_mean", "min_p_adj_mean", "min_p_pair", "min_p_adj_pair", "rejected",
    "as_expected", "shared_out_params", "second_moments", "notes", "monte_carlo",
}  # fmt: skip


@pytest.fixture(scope="module")
def he_result():
    return check_lemma9(Lemma9Config(build_spec("dense", 12, widths=(16,)), mc_draws=40, **KW))


@pytest.fixture(scope="module")
def shared_result():
    return check_lemma9(Lemma9Config(build_spec("dense", 12, widths=(16,)), init="shared", mc_draws=0, **KW))


def test_json_is_the_envelope_with_the_old_keys(he_result):
    out = render_lemma9(he_result, RUN).json
    assert out["command"] == "lemma9"
    assert out["run"]["seed"] == 0
    assert [c["name"] for c in out["claims"]] == [
        "Lemma 9 (dim 12)",
        "Eq. 13 DP = operator (dim 12)",
        "Eq. 13 Monte Carlo (dim 12)",
    ]
    for key in ("arch", "init", "alpha", "seed", "results", "rejected", "as_expected", "report"):
        assert key in out
    (row,) = out["results"]
    assert set(row) == OLD_ROW_KEYS
    assert row["second_moments"]["he"]["dp"] == "2"
    assert row["monte_carlo"]["draws"] == 40
    assert row["rejected"] is False
    assert row["as_expected"] is True
    assert out["report"] == "lemma9-dense.md"
    assert out["mc_draws"] == 40
    json.loads(json_text(out))  # strict JSON: NaN and infinities made null


def test_markdown_states_the_verdicts_and_keeps_tables_whole(he_result):
    rendered = render_lemma9(he_result, RUN)
    md = rendered.markdown
    assert rendered.stem == "lemma9-dense"
    assert not rendered.figures
    assert "# Lemma 9 on dense (init: he)" in md
    assert "## Verdicts" in md
    assert "## Settings" in md
    assert "**consistent** (as expected)" in md
    assert "does not reject" not in md
    assert "rejects (as expected)" not in md
    assert f"- command: `{RUN.command}`" in md
    assert "MC E\\|\\|.\\|\\|^2" in md
    assert "\\|difference\\|" in md
    blocks, block = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line.count("|") - line.count("\\|"))  # unescaped separators
        elif block:
            blocks.append(block)
            block = []
    assert len(blocks) == 5
    assert all(len(set(b)) == 1 for b in blocks)
    assert "Planted failure" not in md


def test_planted_failure_report(shared_result):
    rendered = render_lemma9(shared_result, RUN)
    assert rendered.stem == "lemma9-dense-shared"
    assert "**Planted failure**" in rendered.markdown
    assert "**inconsistent** (as expected)" in rendered.markdown
    assert "layers 1 and 2 share a Gaussian component" in rendered.markdown
    assert "Monte Carlo against Eq. 13" not in rendered.markdown  # mc_draws = 0
    out = rendered.json
    assert out["rejected"] is True
    assert out["as_expected"] is True
    assert out["shared_layers"] == [1, 2]
    assert "monte_carlo" not in out["results"][0]
    assert "Lemma 9 inconsistent (as expected)" in rendered.summary


def test_tables_render_on_github(he_result, shared_result):
    for result in (he_result, shared_result):
        assert_tables_render(render_lemma9(result, RUN).markdown)
