"""verify.cli.options: family flags generated from the families' declarations."""

from __future__ import annotations

import pytest

from graphs.errors import InputError
from graphs.families import FAMILIES
from verify.cli.options import ArgumentParser, add_arch_arguments, family_options, parse_dims


def _parser(**kwargs):
    p = ArgumentParser(prog="t")
    add_arch_arguments(p, **kwargs)
    return p


def test_every_declared_flag_is_generated_once():
    p = _parser()
    flags = {a for action in p._actions for a in action.option_strings}
    for fam in FAMILIES.values():
        for opt in fam.options:
            assert opt.flag in flags


def test_options_are_parsed_by_their_declaration():
    args = _parser().parse_args(
        ["--arch", "strided-cnn", "--strides", "1,2", "--padding", "circular", "--classes", "3"]
    )
    assert family_options(args) == {"strides": (1, 2), "padding": "circular", "num_classes": 3}


def test_the_structure_seed_does_not_shadow_the_run_seed():
    p = _parser()
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(["--arch", "random-dag", "--dag-seed", "5", "--seed", "2"])
    assert args.seed == 2
    assert family_options(args)["seed"] == 5


def test_a_flag_of_another_family_is_an_error():
    args = _parser().parse_args(["--arch", "dense", "--padding", "zeros"])
    with pytest.raises(InputError, match="--padding"):
        family_options(args)


def test_command_defaults_override_family_defaults_and_show_in_help():
    p = _parser(families=["avgpool-cnn"], defaults={"channels": 16})
    args = p.parse_args(["--arch", "avgpool-cnn"])
    assert family_options(args)["channels"] == 16
    assert "(default 16)" in p.format_help()


@pytest.mark.parametrize("text", ["32,x", "32,-1", "32,32", "0", "3.5"])
def test_bad_dims(text):
    with pytest.raises(InputError, match="--dims"):
        parse_dims(text)


def test_dims_keep_order():
    assert parse_dims(" 64, 32,128 ") == [64, 32, 128]
    with pytest.raises(InputError, match="at least 2"):
        parse_dims("32", at_least=2)
