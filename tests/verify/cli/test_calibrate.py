"""`verify calibrate` in-process at a small size (what CI runs), and its bad input."""

from __future__ import annotations

import json

import pytest

from verify.cli import main

SMALL = [
    "calibrate",
    "--seeds",
    "2",
    "--pooled-seeds",
    "1",
    "--planted-seeds",
    "1",
    "--lemma9-seeds",
    "1",
    "--draws",
    "20",
    "--dense-dims",
    "16,32,64,128,256",
    "--dense-widths",
    "8",
    "--pooled-dims",
    "24,32",
    "--pooled-channels",
    "2",
    "--lemma9-draws",
    "600",
    "--n-boot",
    "200",
]


def test_small_run_writes_the_report_and_the_json_envelope(tmp_path, capsys):
    assert main([*SMALL, "--out-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "calibrate"
    assert out["run"]["settings"]["seeds"] == 2
    cases = [c["case"] for c in out["coverage"]]
    assert cases == ["dense-mean", "dense-slope", "dense-asymptotic", "pooled-slope", "pooled-coord", "lemma9"]
    assert [d["case"] for d in out["detection"]] == ["variance-grows", "fan-in-miscounted", "shared-layers"]
    assert out["coverage"][0]["coverage"]["trials"] == 10
    assert len(out["claims"]) == 2 * 6 + 3
    report = (tmp_path / "calibrate.md").read_text()
    for text in ("Clopper-Pearson", "Planted violations", "Why these truths are exact", "calibrate.png"):
        assert text in report, text
    assert (tmp_path / "calibrate.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--seeds", "0"], "--seeds"),
        (["--cases", "dense-mean,bogus"], "bogus"),
        (["--pooled-dims", "8,12"], "--pooled-dims"),
        (["--dense-dims", "16,x"], "--dense-dims"),
        (["--margin", "-1"], "--margin"),
    ],
)
def test_bad_input_one_line_exit_2_no_report(extra, needle, tmp_path, capsys):
    assert main([*SMALL, "--out-dir", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert needle in err, err
    assert not (tmp_path / "r").exists()
