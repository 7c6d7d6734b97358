"""verify.runtime and verify.allocator: precision, the timed thread choice, keeping freed memory."""

from __future__ import annotations

import itertools
import resource

import pytest
import torch

from graphs.errors import InputError
from verify.allocator import glibc_available, retain_freed_memory
from verify.runtime import Runtime, ThreadTuner, runtime


def _drive(tuner: ThreadTuner, cost, pieces: int) -> list[int]:
    """Feed ``pieces`` pieces whose seconds per unit come from ``cost(threads, piece)``."""
    used = []
    for k in range(pieces):
        n = tuner.next()
        used.append(n)
        tuner.record(n, cost(n, k), 1)
    return used


def test_tuner_keeps_the_faster_count_and_probes_less_while_it_holds():
    tuner = ThreadTuner([1, 2], first_period=4, max_period=16)
    used = _drive(tuner, lambda n, k: 1.0 if n == 2 else 1.8, 80)
    assert used[:4] == [1, 2, 1, 2]  # warm-ups, then one timed piece each, interleaved
    assert tuner.best == 2
    probes = [k for k, n in enumerate(used) if n == 1 and k >= 4]
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert gaps == sorted(gaps)
    assert gaps[-1] == 17
    assert used.count(1) < 12


def test_tuner_follows_a_change_of_load():
    # two threads faster while quiet, three times slower once another process holds a core
    loaded_from = 30
    tuner = ThreadTuner([1, 2], first_period=4, max_period=8)
    used = _drive(tuner, lambda n, k: (1.0 if n == 2 else 1.6) if k < loaded_from else (3.0 if n == 2 else 1.6), 90)
    assert tuner.best == 1
    late = used[loaded_from + 20 :]
    assert late.count(1) > 0.8 * len(late)
    # the last three timings decide: a single slow probe does not flip the choice back
    assert used[-1] == 1 or used[-2] == 1


def test_tuner_on_a_busy_machine_starts_on_one_thread_and_probes_rarely():
    tuner = ThreadTuner([1, 2], start=1, first_period=16, max_period=64)
    used = _drive(tuner, lambda n, k: 2.7 if n == 2 else 1.0, 160)  # two threads 2.7x slower, as measured
    assert used[:17] == [1] * 17  # no exploration: the warm-up, then 16 pieces before the first probe
    assert used.count(2) <= 3  # probes after 16, 32 and 64 more pieces
    # a quiet machine is found all the same, at the first probe
    quiet = ThreadTuner([1, 2], start=1, first_period=16)
    used = _drive(quiet, lambda n, k: 0.6 if n == 2 else 1.0, 40)
    assert used[-20:].count(2) >= 18  # two threads from then on, but for a probe of one now and then


def test_runtime_reads_the_machines_load(monkeypatch):
    import verify.runtime as runtime_module

    rt = Runtime(torch.device("cpu"), None, "fp32", 2)
    monkeypatch.setattr(runtime_module, "_busy_elsewhere", lambda: 6.0)
    busy = rt.thread_tuner(1e12)
    assert busy is not None
    assert busy.next() == 1
    assert busy.period == 16
    monkeypatch.setattr(runtime_module, "_busy_elsewhere", lambda: 0.0)
    quiet = rt.thread_tuner(1e12)
    assert quiet is not None
    assert quiet.period == 4


def test_tuner_with_one_choice_is_fixed():
    tuner = ThreadTuner([3])
    assert _drive(tuner, lambda n, k: 1.0, 5) == [3] * 5


def test_runtime_policy_and_precision():
    rt = Runtime(torch.device("cpu"), None, "bf16", 2)
    assert rt.compute_dtype() is torch.bfloat16
    assert rt.compute_dtype(torch.float64) is torch.float64
    assert Runtime(torch.device("cpu"), None, "fp32", 2).compute_dtype() is torch.float32
    assert rt.thread_tuner(1e3) is None  # small work: one thread, nothing to choose
    assert rt.thread_tuner(5e8) is not None  # below SINGLE_THREAD_FLOPS, but worth timing
    tuner = rt.thread_tuner(1e12)
    assert tuner is not None
    assert tuner.choices == [1, 2]
    assert Runtime(torch.device("cpu"), 2, "fp32", 2).thread_tuner(1e12) is None  # a fixed count is kept
    assert Runtime(torch.device("cpu"), None, "fp32", 1).thread_tuner(1e12) is None
    with pytest.raises(InputError, match="--precision"), runtime("cpu", precision="fp16"):
        pass
    with runtime("cpu", precision="bf16") as rt2:
        assert rt2.precision == "bf16"
        assert rt2.description == "cpu (bf16)"


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not glibc_available(), reason="glibc's malloc thresholds only")
def test_a_draw_reuses_the_last_draws_memory_inside_and_not_after():
    # 16 inputs of 64 x 64: the draw allocates 17-33 MB tensors, like a 256-pixel draw of 2 inputs
    from graphs.spec import build_spec
    from verify.engine import draw_quantities

    spec = build_spec("strided-cnn", 64)
    cpu = torch.device("cpu")

    def faults_of_one_draw() -> int:
        before = _faults()
        draw_quantities(spec, 0, [0], 16, device=cpu)
        return _faults() - before

    with retain_freed_memory() as on:
        assert on
        with retain_freed_memory() as nested:  # nesting shares the setting
            assert nested
        faults_of_one_draw()  # the first draw maps what every later draw reuses
        kept = sum(faults_of_one_draw() for _ in range(3))
    returned = sum(faults_of_one_draw() for _ in range(3))
    # the freed blocks come back without the kernel (a block that no longer fits a hole after
    # 64-byte alignment may still be mapped anew now and then); glibc's default maps every
    # large block anew, each of its pages faulted on first touch
    assert kept < 0.5 * returned, (kept, returned)


def test_disabled_retention_changes_nothing():
    with retain_freed_memory(enabled=False) as on:
        assert not on
