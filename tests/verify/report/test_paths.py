"""``render_paths``: report text, JSON envelope with today's keys, heatmap layout and colour bars."""

from __future__ import annotations

import dataclasses
import json

import pytest

from graphs.spec import build_spec
from tests.gfm import assert_tables_render
from verify.checks.paths import PathsConfig, check_paths
from verify.report import json_text
from verify.report.paths import centred_ticks, render_paths
from verify.results import RunInfo

OLD_ROW_KEYS = {
    "dim",
    "d",
    "lemma7_total",
    "path_sum_times_d_min",
    "path_sum_times_d_max",
    "symmetric",
    "h3_violation_fraction",
}
RUN = RunInfo(command="verify paths --arch strided-cnn", seed=0, device="cpu", threads=1, dtype="float64")


@pytest.fixture(scope="module")
def cnn_result():
    specs = tuple(build_spec("strided-cnn", n, channels=4, strides=(1, 2, 2)) for n in (8, 16))
    return check_paths(PathsConfig(specs, trials=3, seed=1))


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.images]


def _colour_bars(fig):
    return [ax for ax in fig.axes if ax.get_visible() and not ax.images]


def test_report_text(cnn_result):
    rendered = render_paths(cnn_result, RUN)
    md = rendered.markdown
    assert rendered.stem == "paths-strided-cnn"
    assert md.startswith("# Path sums: strided-cnn, padding zeros\n")
    assert "- command: `verify paths --arch strided-cnn`" in md  # the common run header
    assert "| dim | d | Lemma 7 total | min d*P(x,o) | max d*P(x,o) | (S) |" in md
    assert md.count("fails (exact)") == 2  # the one (S) wording of every report
    assert "| Lemma 8 / (S) | 1 |" in md
    assert "**inconclusive**" in md
    assert "\\|total - 1\\|" in md  # a note's bars are escaped: the GFM row stays whole
    assert "False-positive bound of the randomised (S) test" in md
    assert "![d * P(x, o)](paths-strided-cnn.png)" in md
    assert "Input channel 0 only: the 3 input channels carry identical values" in md
    assert "2 consistent, 1 inconclusive" in rendered.summary


def test_json_envelope_keeps_todays_keys(cnn_result):
    obj = json.loads(json_text(render_paths(cnn_result, RUN).json))
    assert {"command", "version", "run", "claims", "verdicts"} <= set(obj)
    assert obj["command"] == "paths"
    assert obj["verdicts"] == {"consistent": 2, "inconsistent": 0, "inconclusive": 1}
    assert obj["arch"] == "strided-cnn"
    assert obj["padding"] == "zeros"
    assert (obj["exact"], obj["trials"], obj["seed"]) == (False, 3, 1)
    assert [c["name"] for c in obj["claims"]] == ["Lemma 7", "Lemma 8 / (S)", "(S-bounded)"]
    assert obj["hypotheses_broken"] == ["(S)", "H3"]
    assert obj["symmetry_bounded"] is True
    for row, res in zip(obj["rows"], cnn_result.rows):
        assert set(row) >= OLD_ROW_KEYS
        assert row["path_sum_times_d_max"] == res.dp_max
        assert row["symmetric"] is False
        assert row["symmetry_method"] == "dag-polynomial"
        assert row["false_positive_bound"] == 0.0
        assert row["symmetry_witness"] == list(res.witness)
    assert obj["figure"] == "paths-strided-cnn.png"


def test_heatmap_one_channel_per_size_with_ticks_around_one(cnn_result):
    fig = render_paths(cnn_result, RUN).figures["paths-strided-cnn.png"]
    panels = _panels(fig)
    assert len(panels) == len(cnn_result.rows)  # identical channels: one panel per size
    assert "input channel 0 (the 3 channels are identical)" in fig.get_suptitle()
    bars = _colour_bars(fig)
    assert len(bars) == len(cnn_result.rows)
    for bar, row in zip(bars, cnn_result.rows):
        ticks = list(bar.get_yticks())
        lo, hi = float(row.scaled_first_logit.min()), float(row.scaled_first_logit.max())
        assert ticks[0] == lo
        assert ticks[-1] == hi
        assert 1.0 in ticks
        assert any(lo < t < 1 for t in ticks)
        assert any(1 < t < hi for t in ticks)
        labels = [t.get_text() for t in bar.get_yticklabels()]
        assert labels[0].endswith("(min)")
        assert labels[-1].endswith("(max)")


def test_heatmap_shows_every_channel_when_they_differ(cnn_result):
    rows = []
    for row in cnn_result.rows:
        img = row.scaled_first_logit.copy()
        img[1] *= 1.5
        rows.append(dataclasses.replace(row, scaled_first_logit=img))
    assert not any(r.channels_identical for r in rows)
    rendered = render_paths(dataclasses.replace(cnn_result, rows=tuple(rows)), RUN)
    fig = rendered.figures["paths-strided-cnn.png"]
    assert len(_panels(fig)) == 3 * len(rows)
    assert len(_colour_bars(fig)) == len(rows)
    assert "every input channel" in fig.get_suptitle()
    assert "One panel per input channel: the channels differ." in rendered.markdown


def test_exact_vector_family_has_no_heatmap():
    specs = tuple(build_spec("dense", d, widths=(5, 3)) for d in (4, 6))
    rendered = render_paths(check_paths(PathsConfig(specs, exact=True)), RUN)
    assert rendered.figures == {}
    assert rendered.json["figure"] is None
    assert "| 4 | 4 | 1 (exact) | 1 | 1 | holds (exact) |" in rendered.markdown
    assert "## Heatmap" not in rendered.markdown
    assert "Randomised tests here" not in rendered.markdown
    assert rendered.json["rows"][0]["lemma7_total_exact"] == "1"


def test_centred_ticks():
    ticks = centred_ticks(0.012, 5.888)
    assert ticks[0] == 0.012
    assert ticks[-1] == 5.888
    assert 1.0 in ticks
    assert ticks == sorted(ticks)
    below, above = [t for t in ticks if t < 1], [t for t in ticks if t > 1]
    assert len(below) >= 2
    assert len(above) >= 2
    # no round tick crowds an end: labels stay apart
    assert all(t - 0.012 > 0.15 * (1 - 0.012) for t in below[1:])
    assert all(5.888 - t > 0.15 * (5.888 - 1) for t in above[:-1])
    assert centred_ticks(1.0, 1.0) == [1.0]


def test_tables_render_on_github(cnn_result):
    assert_tables_render(render_paths(cnn_result, RUN).markdown)
    specs = tuple(build_spec("random-dag", d, hidden=(4, 4)) for d in (4, 6))
    assert_tables_render(render_paths(check_paths(PathsConfig(specs, exact=True)), RUN).markdown)
