"""Sweeps: expansion of a TOML grid, the index page, and the same store whatever the executor."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from graphs.errors import InputError
from verify.cli import main
from verify.sweep import load_sweep, run_jobs

SMALL = """
[sweep]
commands = ["scaling"]
seeds = [0, 1]
task_draws = 3

[arch.dense]
dims = [8, 16]
widths = ["8", "16"]

[scaling]
draws = 4
batch = 1
n-boot = 100
quantities = "loss_grad_l2"
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def _store_contents(root: Path) -> dict[str, object]:
    """Every task of a store, by its relative path, as a table (metadata aside)."""
    return {
        str(p.relative_to(root)): pq.read_table(p).replace_schema_metadata(None)
        for p in sorted(root.glob("kind=*/series=*/*.parquet"))
    }


def test_expand_is_the_grid(tmp_path):
    sweep = load_sweep(_write(tmp_path, SMALL), out_dir=str(tmp_path / "out"))
    assert len(sweep.jobs) == 4  # widths x seeds
    assert {j.slug for j in sweep.jobs} == {f"dense-widths-{w}-seed{s}" for w in (8, 16) for s in (0, 1)}
    job = sweep.jobs[0]
    assert job.argv[:5] == ("scaling", "--arch", "dense", "--dims", "8,16")
    assert "--task-draws" in job.argv
    assert str(tmp_path / "out" / "store") in job.argv
    pooling = load_sweep(
        _write(tmp_path, '[sweep]\ncommands = ["pooling", "scaling"]\n[arch.avgpool-cnn]\ndims = [32, 64]\n'),
        out_dir=str(tmp_path / "o2"),
    )
    # pooling takes one size per report, scaling all of them
    assert [(j.command, j.dims) for j in pooling.jobs] == [
        ("pooling", (32,)),
        ("pooling", (64,)),
        ("scaling", (32, 64)),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[sweep]\ncommands = ['paths']\n[arch.dense]\ndims = [8]\n", "choose from"),
        ("[arch.nope]\ndims = [8]\n", "unknown family"),
        ("[arch.dense]\nwidths = '8'\n", "needs dims"),
        ("[arch.dense]\ndims = [8, 16]\npadding = 'zeros'\n", "not an option of dense"),
        ("[arch.dense]\ndims = [8, 16]\n[scaling]\ndraws = [4, 8]\n", "a list"),
        ("[arch.dense]\ndims = [8, 16]\n[scaling]\nbogus = 1\n", "unrecognized arguments"),
        ("[arch.dense\n", "not valid TOML"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, words):
    with pytest.raises(InputError, match=words):
        load_sweep(_write(tmp_path, text))


def test_sweep_command_writes_reports_and_an_index(tmp_path, capsys):
    p = _write(tmp_path, SMALL.replace("seeds = [0, 1]", "seeds = [0]").replace('["8", "16"]', '"8"'))
    assert main(["sweep", str(p), "--out-dir", str(tmp_path / "out")]) == 0
    index = (tmp_path / "out" / "index.md").read_text()
    assert "[scaling-dense.md](scaling/dense-seed0/scaling-dense.md)" in index
    assert (tmp_path / "out" / "scaling" / "dense-seed0" / "scaling-dense.png").exists()
    assert "1 of 1 report(s) written" in capsys.readouterr().out
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert main(["sweep", str(p), "--executor", "dask"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_dask_local_cluster_gives_the_local_store_task_for_task(tmp_path):
    """A real dask.distributed LocalCluster with two worker processes against this process."""
    distributed = pytest.importorskip("distributed")
    text = _write(tmp_path, SMALL.replace("seeds = [0, 1]", "seeds = [0]"))
    local = load_sweep(text, out_dir=str(tmp_path / "local"))
    remote = load_sweep(text, out_dir=str(tmp_path / "dask"))
    results = run_jobs(local.jobs)
    assert [r.status for r in results] == [0, 0]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_dashboard_address=None
    ) as cluster:
        results = run_jobs(remote.jobs, executor="dask", scheduler=cluster.scheduler_address)
    assert [r.status for r in results] == [0, 0], [r.error for r in results]
    a, b = _store_contents(local.store), _store_contents(remote.store)
    assert list(a) == list(b)
    assert len(a) == 2 * 2 * 2
    for name in a:
        assert a[name].equals(b[name]), name
