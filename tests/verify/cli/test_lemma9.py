"""`verify lemma9` (alias `moments`) in-process: report, JSON envelope, old spellings, every bad input."""

from __future__ import annotations

import json
import os

import pytest

from verify.cli import main

SMALL = ["--arch", "random-dag", "--dims", "4", "--hidden", "8,8", "--draws", "400", "--max-pairs", "200"]


def _run_json(argv, capsys):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_report_and_json(tmp_path, capsys):
    argv = ["lemma9", *SMALL, "--mc-draws", "20"]
    out = _run_json([*argv, "--out-dir", str(tmp_path), "--json"], capsys)
    assert out["command"] == "lemma9"
    assert out["init"] == "he"
    assert out["arch"] == "random-dag"
    for key in ("draws", "seed", "init", "rho", "max_inputs", "max_paths", "max_pairs", "alpha", "mc_draws", "options"):
        assert key in out["run"]["settings"], key
    (row,) = out["results"]
    assert row["tested_pairs"] > 0
    assert row["tested_paths"] > 0
    assert row["draws"] == 400
    assert row["second_moments"]["he"]["dp"] == "2"
    assert row["monte_carlo"]["draws"] == 20
    assert out["rejected"] is False
    assert out["as_expected"] is True
    assert out["claims"][0]["verdict"] == "consistent"
    text = (tmp_path / "lemma9-random-dag.md").read_text()
    assert "pairs tested" in text
    assert "Holm" in text
    # the command main() was given, not the test runner's sys.argv
    assert f"`verify {' '.join(argv)} --out-dir {tmp_path} --json`" in text
    # the report, and the results store beside it (the default --store OUT_DIR/store)
    assert sorted(os.listdir(tmp_path)) == ["lemma9-random-dag.md", "store"]


def test_old_spellings_and_the_planted_failure(tmp_path, capsys):
    argv = ["moments", *SMALL[:-4], "--samples", "1500", "--mc-samples", "0", "--init", "shared", "--json"]
    out = _run_json([*argv, "--max-pairs", "300", "--seed", "3", "--out-dir", str(tmp_path)], capsys)
    assert out["command"] == "lemma9"
    assert out["init"] == "shared"
    assert out["shared_layers"] == [1, 2]
    (row,) = out["results"]
    assert row["draws"] == 1500
    assert "monte_carlo" not in row
    assert out["rejected"] is True
    assert out["as_expected"] is True
    assert out["claims"][0]["verdict"] == "inconsistent"
    assert (tmp_path / "lemma9-random-dag-shared.md").exists()


def test_terminal_summary(tmp_path, capsys):
    assert main(["lemma9", *SMALL, "--mc-draws", "0", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Lemma 9 consistent (as expected)" in out
    assert "report:" in out
    assert "wall time" in out


@pytest.mark.parametrize(
    "argv",
    [
        [*SMALL, "--draws", "5"],
        ["--arch", "dense", "--dims", "1000"],  # 324k edges: too large for the explicit DAG
        [*SMALL, "--shared-layers", "1,2"],
        [*SMALL, "--init", "shared", "--shared-layers", "1,9"],
        [*SMALL, "--init", "shared", "--shared-layers", "a,b"],
        [*SMALL, "--rho", "0"],
        [*SMALL, "--seed", "-1"],
        [*SMALL, "--alpha", "1"],
        [*SMALL, "--mc-draws", "1"],
        [*SMALL, "--max-paths", "0"],
        [*SMALL, "--widths", "4"],
        [*SMALL, "--dims", "4,x"],
        [*SMALL, "--device", "gpu"],
        ["--arch", "avgpool-cnn", "--dims", "6", "--strides", "1,4"],
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv):
    assert main(["lemma9", *argv, "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("verify: error:")
    assert "\n" not in err
    assert not (tmp_path / "out").exists()


def test_out_dir_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["lemma9", *SMALL, "--out-dir", str(blocker / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err
