"""`--model FILE.py:FACTORY` in-process: scaling, paths and first-order on the user's module, the
two example files end to end, and every bad module as one line with exit status 2."""

from __future__ import annotations

import json
import textwrap

import pytest

from verify.cli import main

NETS = """
import torch
from torch import nn

def mlp(d):
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 4))

class Normed(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 4)

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.fc(x))))

def normed(d):
    return Normed(d)

def broken(d):
    raise RuntimeError("factory failed")

def bn_mlp(d):
    return nn.Sequential(nn.Linear(d, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
"""


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(NETS))
    return str(path)


def _json(argv, capsys):
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_scaling_of_a_traceable_user_module_has_the_exact_side(nets, tmp_path, capsys):
    argv = ["scaling", "--model", f"{nets}:mlp", "--input-shape", "vector", "--dims", "16,64,256", "--n-boot", "200"]
    out = _json([*argv, "--draws", "6", "--batch", "2", "--out-dir", str(tmp_path), "--json"], capsys)
    assert out["arch"] == "model-nets-mlp"
    assert out["exact_side"] is True
    assert out["symmetric"] is True
    assert out["run"]["settings"]["options"]["model"] == f"{nets}:mlp"
    assert (tmp_path / "scaling-model-nets-mlp.md").is_file()


def test_scaling_of_an_untraceable_module_names_what_keeps_it_from_the_exact_side(nets, tmp_path, capsys):
    argv = ["scaling", "--model", f"{nets}:normed", "--input-shape", "vector", "--dims", "16,64", "--n-boot", "200"]
    out = _json([*argv, "--draws", "4", "--batch", "1", "--out-dir", str(tmp_path), "--json"], capsys)
    assert out["exact_side"] is False
    assert out["exact_obstacles"] == ["norm: module norm (LayerNorm)"]
    report = (tmp_path / "scaling-model-nets-normed.md").read_text()
    assert "No exact side for this net" in report
    assert "norm: module norm (LayerNorm)" in report


def test_paths_and_first_order_take_a_model(nets, tmp_path, capsys):
    out = _json(
        [
            "paths",
            "--model",
            f"{nets}:mlp",
            "--input-shape",
            "vector",
            "--dims",
            "4,8",
            "--exact",
            "--out-dir",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    assert out["verdicts"]["consistent"] >= 2
    argv = ["first-order", "--model", f"{nets}:mlp", "--input-shape", "vector", "--dims", "16,64", "--draws", "2"]
    out = _json([*argv, "--batch", "4", "--eps", "1e-3,1e-2", "--out-dir", str(tmp_path), "--json"], capsys)
    assert out["command"] == "first-order"


def test_the_example_resnet18_runs_end_to_end(tmp_path, capsys):
    argv = ["scaling", "--model", "examples/resnet18.py:resnet18", "--dims", "16,32", "--draws", "2", "--batch", "1"]
    out = _json(
        [*argv, "--quantities", "logit_grad_l2,vuln_l2", "--n-boot", "100", "--out-dir", str(tmp_path), "--json"],
        capsys,
    )
    assert out["exact_side"] is True
    # the ReLU after every addition and the max pool break H1 by construction; zero padding H3
    assert {"H1", "H3"} <= set(out["hypotheses_broken"])


def test_the_example_vit_runs_on_the_monte_carlo_alone(tmp_path, capsys):
    argv = ["scaling", "--model", "examples/small_vit.py:small_vit", "--dims", "16,32", "--draws", "2", "--batch", "1"]
    out = _json([*argv, "--quantities", "vuln_l2", "--n-boot", "100", "--out-dir", str(tmp_path), "--json"], capsys)
    assert out["exact_side"] is False
    assert any("MultiheadAttention" in o for o in out["exact_obstacles"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "nowhere.py:f"], "file nowhere.py not found"),
        (["--model", "{nets}:absent"], "has no absent"),
        (["--model", "{nets}:broken"], "raised RuntimeError: factory failed"),
        (["--model", "{nets}:mlp"], "check --input-shape (image"),
        (["--model", "{nets}:mlp", "--arch", "dense"], "--arch and --model both given"),
        (["--model", "{nets}:mlp", "--input-shape", "vector", "--widths", "4"], "--widths set options of a family"),
        (["--model", "{nets}:mlp", "--input-shape", "vector", "--weights", "w.pt"], "--init keep"),
        ([], "give --arch FAMILY or --model"),
    ],
)
def test_bad_models_are_one_line_errors_with_nothing_written(nets, tmp_path, capsys, args, words):
    out_dir = tmp_path / "out"
    argv = ["scaling", *[a.format(nets=nets) for a in args], "--dims", "16,32", "--out-dir", str(out_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err
    assert err.count("\n") == 1
    assert not out_dir.exists()


def test_paths_refuses_a_module_without_exact_side(nets, tmp_path, capsys):
    assert (
        main(
            [
                "paths",
                "--model",
                f"{nets}:normed",
                "--input-shape",
                "vector",
                "--dims",
                "4",
                "--out-dir",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "paths needs the exact side" in capsys.readouterr().err


def test_first_order_refuses_batch_statistics(nets, tmp_path, capsys):
    argv = ["first-order", "--model", f"{nets}:bn_mlp", "--input-shape", "vector", "--mode", "train", "--dims", "8,16"]
    assert main([*argv, "--out-dir", str(tmp_path / "o")]) == 2
    assert "batch statistics couple the samples" in capsys.readouterr().err


def test_pooling_says_what_to_run_for_a_model(capsys, tmp_path):
    assert main(["pooling", "--model", "x.py:f", "--out-dir", str(tmp_path / "o")]) == 2
    assert "verify scaling --model x.py:f" in capsys.readouterr().err
