"""`verify flip-distance` in-process: report, plot, JSON envelope and bad input."""

from __future__ import annotations

import json

import pytest

from verify.cli import main

ARGV = ["flip-distance", "--arch", "dense", "--dims", "16,64", "--widths", "8", "--draws", "4", "--n-boot", "200"]


def test_json_report_and_plot(tmp_path, capsys):
    assert main([*ARGV, "--out-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "flip-distance"
    assert {"draws", "seed", "overshoot", "max_iter", "t_max", "dtype", "dims"} <= set(out["run"]["settings"])
    assert len(out["methods"]) == 6
    assert out["claims"][-1]["name"] == "homogeneity"
    assert out["claims"][-1]["verdict"] == "consistent"
    assert len(out["papers"]) == 4
    report = (tmp_path / "flip-distance-dense.md").read_text()
    for text in ("Daniely", "Bartlett", "Montanari", "Bubeck", "Euler's identity", "constant C", "DeepFool"):
        assert text in report, text
    assert (tmp_path / "flip-distance-dense.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--dims", "16"], "at least 2"),
        (["--draws", "1"], "--draws"),
        (["--overshoot", "0"], "--overshoot"),
        (["--t-max", "0"], "--t-max"),
        (["--classes", "1"], "--classes"),
        (["--padding", "zeros"], "--padding"),
    ],
)
def test_bad_input_one_line_exit_2_no_report(extra, needle, tmp_path, capsys):
    assert main([*ARGV, "--out-dir", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert needle in err, err
    assert not (tmp_path / "r").exists()
