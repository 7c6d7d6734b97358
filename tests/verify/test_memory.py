"""verify.memory: sizes, the shape arithmetic the estimates rest on, plans and the refusal."""

from __future__ import annotations

import time

import pytest

from graphs.errors import InputError
from graphs.pathsums import spec_edge_count
from graphs.spec import build_spec
from verify import memory
from verify.model import sample_params


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64G", 64 << 30),
        ("512M", 512 << 20),
        ("1.5T", 3 << 39),
        ("64GiB", 64 << 30),
        ("2gb", 2 << 30),
        ("1048576", 1 << 20),
    ],
)
def test_parse_bytes(text, value):
    assert memory.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "x", "12Q", "-5G", "0", "1K", "nan", "inf"])
def test_parse_bytes_refuses_in_one_line_naming_the_flag(text):
    with pytest.raises(InputError, match=r"^--max-memory: "):
        memory.parse_bytes(text)


def test_format_bytes():
    assert memory.format_bytes(1.5 * (1 << 30)) == "1.5 GiB"
    assert memory.format_bytes(320 << 20) == "320 MiB"
    assert memory.format_bytes(12) == "12 B"
    assert memory.format_bytes(3 * 2**80).endswith(" B")


SPECS = [
    build_spec("dense", 16, widths=(8, 4)),
    build_spec("strided-cnn", 8, channels=2, strides=(1, 2)),
    build_spec("strided-cnn", 9, channels=2, strides=(1, 2), padding="reflect"),
    build_spec("avgpool-cnn", 8, channels=2, strides=(1, 2, 2)),
    build_spec("random-dag", 6, hidden=(5, 4)),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_shape_arithmetic(spec):
    assert memory.activation_floats(spec) == sum(spec.sizes)
    params = sample_params(spec, 0, 0)
    assert memory.weight_floats(spec) == sum(p.numel() for p in params if p is not None)
    # an upper bound on the DAG's edges, exact where every neuron has its full fan-in
    edges = spec_edge_count(spec)
    assert memory.edge_bound(spec) >= edges
    if spec.family == "dense":
        assert memory.edge_bound(spec) == edges
    assert memory.output_rows(spec) == len(spec.layers[-1].output_classes(list(range(spec.num_classes))))
    assert memory.output_rows(spec, every_logit=True) == spec.num_classes


def test_estimates_grow_with_the_size_and_the_batch():
    small, large = (build_spec("strided-cnn", n) for n in (32, 64))
    for need in (memory.exact_side, memory.second_moments):
        assert need(large, "").bytes > need(small, "").bytes
    assert memory.engine(small, "", batch=8).bytes > memory.engine(small, "", batch=1).bytes
    assert memory.first_order_engine(large, "", batch=2).bytes > memory.first_order_engine(small, "", batch=2).bytes


def test_sizes_no_machine_holds_are_estimated_in_microseconds():
    start = time.perf_counter()
    spec = build_spec("strided-cnn", 2**31)
    plan = memory.scaling_plan([spec], draws=160, batch=2, n_boot=2000, labels=["--dims 2147483648"])
    assert plan.peak() > 1 << 60
    assert time.perf_counter() - start < 1.0
    with pytest.raises(memory.MemoryLimitError, match=r"^--dims 2147483648 (--batch 2 )?needs ~.* of memory \("):
        memory.check_plan(plan, limit=64 << 30)


def test_a_plan_takes_the_largest_phase_plus_what_is_kept():
    a = memory.Need("a", "--dims 1", 100 << 20)
    b = memory.Need("b", "--dims 2", 300 << 20, device=True)
    kept = memory.Need("records", "--draws 9", 50 << 20)
    plan = memory.Plan((a, b), (kept,))
    assert plan.peak() == memory.BASELINE_BYTES + (350 << 20)
    assert plan.peak(device=False) == memory.BASELINE_BYTES + (150 << 20)
    assert plan.peak(device=True) == 300 << 20
    memory.check_plan(plan, limit=1 << 40)
    with pytest.raises(memory.MemoryLimitError) as caught:
        memory.check_plan(plan, limit=600 << 20)
    text = str(caught.value)
    assert text.startswith("--dims 2 needs ~")
    assert "--max-memory allows 600 MiB" in text
    assert "--max-memory 1G" in text
    # on a GPU the device phases are judged against the device
    memory.check_plan(plan, limit=1 << 30, on_device=True, device_limit=400 << 20)
    with pytest.raises(memory.MemoryLimitError, match="GPU"):
        memory.check_plan(plan, limit=1 << 40, on_device=True, device_limit=200 << 20)


def test_records_and_bootstrap_name_their_flags():
    spec = build_spec("dense", 8, widths=(4,))
    plan = memory.scaling_plan([spec, build_spec("dense", 16, widths=(4,))], draws=10**11, batch=1, n_boot=2000)
    with pytest.raises(memory.MemoryLimitError, match="--draws 100000000000"):
        memory.check_plan(plan, limit=64 << 30)


def test_the_random_dag_masks_are_estimated_before_drawing():
    need = memory.random_dag_build(2**31, {"hidden": (4, 4)}, "--dims 2147483648")
    assert need.bytes > 24 * 4 * 2**31


def test_available_memory_is_known_here():
    have = memory.available_bytes()
    assert have is None or have > 0


def test_max_memory_overrides_what_the_machine_has(tmp_path, capsys, monkeypatch):
    from verify.cli import main

    argv = ["paths", "--arch", "strided-cnn", "--dims", "8", "--channels", "2", "--strides", "1,2"]
    monkeypatch.setattr(memory, "available_bytes", lambda: 100 << 20)
    assert main([*argv, "--out-dir", str(tmp_path / "a")]) == 2
    assert "this machine has 100 MiB available" in capsys.readouterr().err
    assert main([*argv, "--out-dir", str(tmp_path / "b"), "--max-memory", "4G"]) == 0
    assert (tmp_path / "b" / "paths-strided-cnn.md").exists()
    assert not (tmp_path / "a").exists()
