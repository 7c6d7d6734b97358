"""The comparison: architecture strings, the exact (H) slope beside each fit, and the result's shape."""

from __future__ import annotations

import math

import pytest

from graphs.errors import InputError
from graphs.spec import build_spec
from verify.checks.compare import (
    DEFAULTS,
    QUANTITIES,
    CompareConfig,
    check_compare,
    consistent_with_sqrt_d,
    eq13_values,
    explanation,
    parse_arch,
)
from verify.stats import ols_slope

TINY = (
    "strided-cnn:channels=2:strides=1.2",
    "resnet:width=2:blocks=1:stage-strides=2",
    "vit:patch=4:embed-dim=8:heads=2",
)


@pytest.fixture(scope="module")
def result():
    config = CompareConfig(TINY, (8, 16), draws=4, batch=1, n_boot=200)
    return check_compare(config)


def test_arch_strings_take_family_flags_over_the_comparison_defaults():
    assert parse_arch("resnet") == ("resnet", "resnet", DEFAULTS["resnet"])
    label, fam, opts = parse_arch("resnet:blocks=2.2:stage-strides=1.2:bn=on")
    assert (label, fam) == ("resnet:blocks=2.2:stage-strides=1.2:bn=on", "resnet")
    assert opts == {"width": 8, "blocks": (2, 2), "stage_strides": (1, 2), "bn": "on"}
    assert parse_arch("vit:grid=4")[2] == {"patch": 8, "embed_dim": 32, "grid": 4}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("transformer", "unknown architecture"),
        ("resnet:depth=3", "not FLAG=VALUE"),
        ("resnet:bn", "not FLAG=VALUE"),
        ("resnet:bn=maybe", "--bn"),
    ],
)
def test_bad_arch_strings(text, words):
    with pytest.raises(InputError, match=words):
        parse_arch(text)


def test_bad_configs_are_refused_before_any_work():
    with pytest.raises(InputError, match="given twice"):
        CompareConfig(("resnet", "resnet"), (8, 16))
    with pytest.raises(InputError, match="at least two sizes"):
        CompareConfig(("strided-cnn",), (16,))
    with pytest.raises(InputError, match="--archs paper-net"):
        CompareConfig(("paper-net",), (16, 24))


def test_eq13_slope_of_a_global_average_pooling_head_is_minus_one_half():
    """Circular padding (H3 holds): the head averages (n/4)^2 positions, so E||d_x f||^2 ~ 1/d exactly
    (Theorem 10); with the flattened map instead the (H) value does not depend on d."""
    dims = (8, 16, 32)
    for head, slope in (("avg", -0.5), ("flatten", 0.0)):
        specs = [
            build_spec("resnet", n, width=2, blocks=(1, 1), stage_strides=(2, 2), head=head, padding="circular")
            for n in dims
        ]
        values, obstacles = eq13_values(specs)
        assert obstacles == ()
        assert values is not None
        fitted = ols_slope([math.log(s.d) for s in specs], [0.5 * math.log(v) for v in values])[0]
        assert fitted == pytest.approx(slope, abs=1e-9)


def test_eq13_has_no_value_with_batch_statistics_max_pooling_or_attention():
    for name, n, opts in (("paper-net", 32, {"channels": 2}), ("vit", 8, {"patch": 4})):
        values, obstacles = eq13_values([build_spec(name, n, **opts)])
        assert values is None
        assert obstacles


def test_result_holds_one_scaling_check_per_architecture(result):
    assert [a.label for a in result.archs] == list(TINY)
    for a in result.archs:
        # logit_grad_l2 brings its square, the quantity Eq. 13 gives exactly (verify.checks.scaling)
        assert set(a.scaling.fits()) == {*QUANTITIES, "logit_grad_l2_sq"}
        assert consistent_with_sqrt_d(a) in ("yes", "no", "undecided")
        assert explanation(a).endswith(".")
    resnet = result.archs[1]
    assert resnet.eq13 is not None
    assert resnet.eq13_slope is not None
    assert "H1" in resnet.notes
    vit = result.archs[2]
    assert vit.eq13 is None
    assert not vit.scaling.hypotheses.exact
    assert len(result.claims) == 2 * len(TINY)
    assert all(c.name.split(": ")[1] in ("vuln_linf", "vuln_l2") for c in result.claims)
    assert set(result.records["arch"]) == set(TINY)
