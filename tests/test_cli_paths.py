"""``verify paths`` in-process: JSON shape, report and heatmap, one-line errors."""

from __future__ import annotations

import json

import pytest

from verify.cli import main

ROW_KEYS = {"dim", "d", "lemma7_total", "path_sum_times_d_min", "path_sum_times_d_max", "symmetric", "h3_violation_fraction"}
SMALL_CNN = ["--channels", "4", "--strides", "1,2,2"]


def _json(capsys):
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


def test_json_shape_and_report_for_a_cnn(tmp_path, capsys):
    args = ["paths", "--arch", "strided-cnn", "--dims", "8,16", "--padding", "zeros", *SMALL_CNN, "--json", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    obj = _json(capsys)
    assert set(obj) == {"arch", "padding", "rows"}
    assert obj["arch"] == "strided-cnn" and obj["padding"] == "zeros"
    assert [r["dim"] for r in obj["rows"]] == [8, 16]
    for row in obj["rows"]:
        assert set(row) == ROW_KEYS
        assert row["d"] == 3 * row["dim"] ** 2
        assert row["lemma7_total"] == pytest.approx(1.0, abs=1e-13)
        assert row["path_sum_times_d_min"] < 1 < row["path_sum_times_d_max"]
        assert row["symmetric"] is False
        assert 0 < row["h3_violation_fraction"] < 1
    report = (tmp_path / "paths-strided-cnn.md").read_text()
    assert "| dim | d |" in report and "False-positive bound" in report and "paths-strided-cnn.png" in report
    png = tmp_path / "paths-strided-cnn.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_circular_kernel_equals_stride_is_symmetric(tmp_path, capsys):
    args = ["paths", "--arch", "strided-cnn", "--dims", "9", "--strides", "3,3", "--channels", "2", "--padding", "circular", "--json", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    (row,) = _json(capsys)["rows"]
    assert row["symmetric"] is True and row["h3_violation_fraction"] == 0
    assert row["path_sum_times_d_min"] == pytest.approx(1, rel=1e-13) and row["path_sum_times_d_max"] == pytest.approx(1, rel=1e-13)


def test_exact_dense(tmp_path, capsys):
    assert main(["paths", "--arch", "dense", "--dims", "4,6", "--widths", "5,3", "--exact", "--json", "--out-dir", str(tmp_path)]) == 0
    obj = _json(capsys)
    assert obj["padding"] is None
    for row in obj["rows"]:
        assert row["lemma7_total"] == 1.0 and row["path_sum_times_d_min"] == 1.0 == row["path_sum_times_d_max"]
        assert row["symmetric"] is True and row["h3_violation_fraction"] == 0
    report = (tmp_path / "paths-dense.md").read_text()
    assert "1 (exact)" in report and "yes (exact)" in report
    assert not (tmp_path / "paths-dense.png").exists()


def test_exact_random_dag_matches_operator_form(tmp_path, capsys):
    base = ["paths", "--arch", "random-dag", "--dims", "7", "--hidden", "5,4", "--json", "--out-dir", str(tmp_path)]
    assert main([*base, "--exact"]) == 0
    exact = _json(capsys)["rows"][0]
    assert main(base) == 0
    approx = _json(capsys)["rows"][0]
    assert exact["lemma7_total"] == 1.0
    for key in ("path_sum_times_d_min", "path_sum_times_d_max"):
        assert approx[key] == pytest.approx(exact[key], rel=1e-12)
    assert exact["symmetric"] == approx["symmetric"]


def test_table_output_without_json(tmp_path, capsys):
    assert main(["paths", "--arch", "avgpool-cnn", "--dims", "8", *SMALL_CNN, "--padding", "circular", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| dim | d |" in out and "report:" in out and "heatmap:" in out
    assert (tmp_path / "paths-avgpool-cnn.png").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--arch", "resnet", "--dims", "8"],
        ["--arch", "dense", "--dims", "8,x"],
        ["--arch", "dense", "--dims", "0,8"],
        ["--arch", "dense", "--dims", "-4"],
        ["--arch", "dense", "--dims", "2.5"],
        ["--arch", "avgpool-cnn", "--dims", "12"],  # 5 poolings of 2 do not tile 12
        ["--arch", "strided-cnn", "--dims", "32", "--exact"],  # ~4e7 edges
        ["--arch", "dense", "--dims", "8", "--padding", "zeros"],
        ["--arch", "dense", "--dims", "8", "--trials", "0"],
        ["--arch", "strided-cnn", "--dims", "32", "--channels", "16", "--padding", "circular", "--seed", "-1"],  # randomised (S) test
        ["--arch", "dense"],
    ],
)
def test_bad_input_is_one_line_and_no_report(argv, tmp_path, capsys):
    assert main(["paths", *argv, "--out-dir", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verify: error:"), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_exact_too_big_names_the_fix(tmp_path, capsys):
    assert main(["paths", "--arch", "strided-cnn", "--dims", "32", "--exact", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "edges" in err and "drop --exact" in err


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["paths", "--arch", "dense", "--dims", "4", "--out-dir", str(blocker / "sub")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_help_has_examples(capsys):
    assert main(["paths", "--help"]) == 0
    assert "verify paths --arch strided-cnn" in capsys.readouterr().out
