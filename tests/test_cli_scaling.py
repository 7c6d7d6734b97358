"""`verify scaling` in-process: report, plot, JSON shape, determinism and every bad input."""

from __future__ import annotations

import json
import os

import pytest
import torch

from verify.cli import main
from verify.engine import QUANTITIES

DENSE = ["scaling", "--arch", "dense", "--dims", "16,64,256", "--widths", "32", "--samples", "8", "--batch", "2"]
CNN = ["scaling", "--arch", "strided-cnn", "--dims", "8,16", "--channels", "4", "--strides", "1,2", "--samples", "6", "--batch", "1"]


def _run_json(argv, capsys):
    assert main(argv) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_json_shape_report_and_plot(tmp_path, capsys):
    out, err = _run_json([*DENSE, "--out-dir", str(tmp_path), "--json"], capsys)
    assert set(out) == {"arch", "padding", "dims", "d", "seed", "samples", "symmetric", "h3_violation_fraction", "quantities"}
    assert out["arch"] == "dense" and out["padding"] is None
    assert out["dims"] == [16, 64, 256] and out["d"] == [16, 64, 256]
    assert out["seed"] == 0 and out["samples"] == 8
    assert out["symmetric"] is True and out["h3_violation_fraction"] == 0.0
    assert [q["name"] for q in out["quantities"]] == list(QUANTITIES)
    for q in out["quantities"]:
        assert set(q) == {"name", "predicted_slope", "slope", "ci_low", "ci_high", "verdict", "means", "stderr"}
        assert q["verdict"] in ("consistent", "inconsistent", "inconclusive")
        assert len(q["means"]) == len(q["stderr"]) == 3
        assert q["ci_low"] <= q["slope"] <= q["ci_high"] or q["verdict"] == "inconclusive"
    assert "wall time" in err
    report = (tmp_path / "scaling-dense.md").read_text()
    for text in ("## Settings", "wall time", "torch", "## Verdicts", "predicted slope", "95% CI", "Per-size means", "(S) holds", "H3 holds", "scaling-dense.png"):
        assert text in report, text
    assert (tmp_path / "scaling-dense.png").stat().st_size > 1000
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "temporary files left behind"


def test_same_seed_same_json(tmp_path, capsys):
    a, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "a"), "--json", "--seed", "3"], capsys)
    b, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "b"), "--json", "--seed", "3"], capsys)
    c, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "c"), "--json", "--seed", "4"], capsys)
    assert a == b
    assert a != c


def test_broken_hypotheses_are_stated_next_to_the_verdicts(tmp_path, capsys):
    assert main([*CNN, "--out-dir", str(tmp_path), "--quantities", "logit_grad_l2,vuln_linf"]) == 0
    out = capsys.readouterr().out
    assert "(S) FAILS" in out and "H3 FAILS" in out and "wall time" in out
    report = (tmp_path / "scaling-strided-cnn.md").read_text()
    verdicts = report.split("## Verdicts", 1)[1].split("## Per-size", 1)[0]
    assert "Warning: (S) and H3 fail" in verdicts
    assert "(S) fails: not implied" in verdicts  # vuln_linf needs (S)
    rows = [line for line in verdicts.splitlines() if line.startswith("| logit_grad_l2") or line.startswith("| vuln_linf")]
    assert len(rows) == 2
    assert "padding: zeros" in report


def test_dims_order_does_not_matter(tmp_path, capsys):
    # Per-size tables pair each size with its mean: sizes given out of order must not shift them.
    a, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "a"), "--json"], capsys)
    shuffled = [*DENSE]
    shuffled[shuffled.index("--dims") + 1] = "256,16,64"
    b, _ = _run_json([*shuffled, "--out-dir", str(tmp_path / "b"), "--json"], capsys)
    assert a == b
    report = (tmp_path / "b" / "scaling-dense.md").read_text()
    assert "| 16 -> 64 |" in report and "| 64 -> 256 |" in report


def test_quantities_subset_in_json(tmp_path, capsys):
    out, _ = _run_json([*DENSE, "--out-dir", str(tmp_path), "--json", "--quantities", "vuln_l2,loss_grad_l1"], capsys)
    assert [q["name"] for q in out["quantities"]] == ["vuln_l2", "loss_grad_l1"]


BAD = [
    (["--dims", "16"], "at least 2"),
    (["--dims", "16,16"], "distinct"),
    (["--dims", "16,-4"], "positive"),
    (["--dims", "16,0"], "positive"),
    (["--dims", "a,b"], "integer"),
    (["--samples", "0"], "--samples"),
    (["--samples", "-3"], "--samples"),
    (["--batch", "0"], "--batch"),
    (["--margin", "0"], "--margin"),
    (["--margin", "-0.1"], "--margin"),
    (["--quantities", "loss_grad_l3"], "loss_grad_l3"),
    (["--quantities", ","], "--quantities"),
    (["--eps-inf", "0"], "--eps-inf"),
    (["--inputs", "uniform"], "--inputs"),
    (["--padding", "circular"], "--padding"),  # not a dense option
    (["--seed", "-1"], "--seed"),
    (["--classes", "1"], "--classes"),
]


@pytest.mark.parametrize("extra,needle", BAD, ids=[" ".join(e) for e, _ in BAD])
def test_bad_input_one_line_exit_2_no_report(extra, needle, tmp_path, capsys):
    argv = ["scaling", "--arch", "dense", "--dims", "16,64", "--samples", "4", "--out-dir", str(tmp_path / "r")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("verify"), err
    assert needle in err, err
    assert not (tmp_path / "r" / "scaling-dense.md").exists()


def test_unknown_family(tmp_path, capsys):
    assert main(["scaling", "--arch", "resnet", "--dims", "8,16", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "resnet" in err
    assert not list(tmp_path.iterdir())


def test_upsampled_sizes_must_be_multiples(tmp_path, capsys):
    assert main([*CNN[:4], "8,12", *CNN[5:], "--inputs", "upsampled", "--out-dir", str(tmp_path)]) == 2
    assert "multiples" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_where_none(tmp_path, capsys):
    assert main([*DENSE, "--device", "cuda", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cuda" in err.lower()
    assert not list(tmp_path.iterdir())


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([*DENSE, "--out-dir", str(blocker / "reports")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not writable" in err
    assert not (blocker.parent / "scaling-dense.md").exists()


def test_help_documents_the_defaults(capsys):
    assert main(["scaling", "--help"]) == 0
    out = capsys.readouterr().out
    assert "verify scaling --arch strided-cnn --dims 32,64,128,256" in out
    assert "about a minute" in out and "--samples" in out and "--batch" in out
