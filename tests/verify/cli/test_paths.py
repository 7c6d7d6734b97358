"""``verify paths`` in-process: JSON envelope, report files, terminal output, progress, bad input."""

from __future__ import annotations

import json

import pytest

import verify.checks.paths
import verify.montecarlo
from verify.cli import main

SMALL_CNN = ["--channels", "4", "--strides", "1,2,2"]
OLD_ROW_KEYS = {
    "dim",
    "d",
    "lemma7_total",
    "path_sum_times_d_min",
    "path_sum_times_d_max",
    "symmetric",
    "h3_violation_fraction",
}


def _json(capsys):
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1
    assert captured.err == ""
    return json.loads(captured.out)


def test_json_report_and_heatmap_for_a_cnn(tmp_path, capsys):
    argv = ["paths", "--arch", "strided-cnn", "--dims", "16,8", *SMALL_CNN, "--json", "--out-dir", str(tmp_path)]
    assert main(argv) == 0
    obj = _json(capsys)
    assert obj["command"] == "paths"
    assert obj["run"]["settings"]["dims"] == [8, 16]
    assert obj["run"]["dtype"] == "float64"
    assert obj["run"]["device"] == "cpu"
    assert obj["arch"] == "strided-cnn"
    assert obj["padding"] == "zeros"
    assert [r["dim"] for r in obj["rows"]] == [8, 16]
    for row in obj["rows"]:
        assert set(row) >= OLD_ROW_KEYS
        assert row["d"] == 3 * row["dim"] ** 2
        assert row["lemma7_total"] == pytest.approx(1.0, abs=1e-13)
        assert row["path_sum_times_d_min"] < 1 < row["path_sum_times_d_max"]
        assert row["symmetric"] is False
        assert 0 < row["h3_violation_fraction"] < 1
    assert [c["verdict"] for c in obj["claims"]] == ["consistent", "inconclusive", "consistent"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paths-strided-cnn.md", "paths-strided-cnn.png"]
    assert (tmp_path / "paths-strided-cnn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exact_random_dag_matches_operator_form(tmp_path, capsys):
    base = ["paths", "--arch", "random-dag", "--dims", "7", "--hidden", "5,4", "--json", "--out-dir", str(tmp_path)]
    assert main([*base, "--exact"]) == 0
    exact = _json(capsys)
    assert main(base) == 0
    approx = _json(capsys)
    assert exact["exact"] is True
    assert exact["run"]["dtype"] == "fraction"
    e, a = exact["rows"][0], approx["rows"][0]
    assert e["lemma7_total"] == 1.0
    assert e["lemma7_total_exact"] == "1"
    for key in ("path_sum_times_d_min", "path_sum_times_d_max"):
        assert a[key] == pytest.approx(e[key], rel=1e-12)
    assert e["symmetric"] == a["symmetric"] is False


def test_terminal_table_and_progress(tmp_path, capsys, monkeypatch):
    # a terminal gets one progress line per phase (path sums, then report and plots)
    monkeypatch.setattr(verify.montecarlo, "show_progress", lambda quiet=False: not quiet)
    argv = ["paths", "--arch", "avgpool-cnn", "--dims", "8", *SMALL_CNN, "--padding", "circular"]
    assert main([*argv, "--out-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "| dim | d | Lemma 7 total |" in captured.out
    assert "report:" in captured.out
    assert "Lemma 8 / (S): " in captured.out
    assert "paths-avgpool-cnn.png" in captured.out
    assert captured.err.count("\n") == 2
    lines = [line.rsplit("\r\033[K", 1)[-1] for line in captured.err.split("\n") if line]
    assert lines[0].startswith("verify paths: path sums, (S) and H3 at 1 size(s)")
    assert lines[1].startswith("verify paths: report and plots: ")


def test_symmetric_net(tmp_path, capsys):
    argv = ["paths", "--arch", "strided-cnn", "--dims", "9", "--strides", "3,3", "--channels", "2"]
    assert main([*argv, "--padding", "circular", "--json", "--out-dir", str(tmp_path)]) == 0
    obj = _json(capsys)
    (row,) = obj["rows"]
    assert row["symmetric"] is True
    assert row["h3_violation_fraction"] == 0
    assert row["path_sum_times_d_min"] == pytest.approx(1, rel=1e-13)
    assert row["path_sum_times_d_max"] == pytest.approx(1, rel=1e-13)
    assert obj["verdicts"] == {"consistent": 3, "inconsistent": 0, "inconclusive": 0}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--arch", "no-such-net", "--dims", "8"], "no-such-net"),
        (["--arch", "dense", "--dims", "8,x"], "--dims"),
        (["--arch", "dense", "--dims", "0,8"], "--dims"),
        (["--arch", "dense", "--dims", "-4"], "--dims"),
        (["--arch", "dense", "--dims", "2.5"], "--dims"),
        (["--arch", "dense", "--dims", "4,4"], "distinct"),
        (["--arch", "avgpool-cnn", "--dims", "12"], "does not tile"),  # 5 poolings of 2 do not tile 12
        (["--arch", "strided-cnn", "--dims", "32", "--exact"], "drop --exact"),  # ~4e7 edges
        (["--arch", "dense", "--dims", "8", "--padding", "zeros"], "--padding"),
        (["--arch", "dense", "--dims", "8", "--trials", "0"], "--trials"),
        (["--arch", "strided-cnn", "--dims", "32", "--padding", "circular", "--seed", "-1"], "--seed"),
        (["--arch", "dense"], "--dims"),
    ],
)
def test_bad_input_is_one_line_before_any_work(argv, needle, tmp_path, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("check_paths ran before the input was validated")

    monkeypatch.setattr(verify.checks.paths, "check_paths", no_work)
    assert main(["paths", *argv, "--out-dir", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("verify"), captured.err
    assert needle in lines[0]
    assert captured.out == ""
    assert not (tmp_path / "r").exists()


def test_unwritable_out_dir_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(verify.checks.paths, "check_paths", lambda *a, **k: pytest.fail("ran"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["paths", "--arch", "dense", "--dims", "4", "--out-dir", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "not a folder" in err


def test_help_has_examples(capsys):
    assert main(["paths", "--help"]) == 0
    out = capsys.readouterr().out
    assert "verify paths --arch strided-cnn --dims 32,64,128,256" in out
    assert "--trials" in out
