"""A user's own ``graphs`` or ``verify`` shadowing the toolkit's: one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import verify
from verify.installation import ShadowedPackageError, installation_problem, require_installation

ROOT = Path(verify.__file__).resolve().parent.parent


def test_this_checkout_is_a_complete_installation():
    assert installation_problem() is None
    require_installation()


def test_a_foreign_graphs_module_is_named(tmp_path, monkeypatch):
    fake = types.ModuleType("graphs")
    fake.__file__ = str(tmp_path / "graphs.py")
    monkeypatch.setitem(sys.modules, "graphs", fake)
    problem = installation_problem()
    assert problem is not None
    assert str(tmp_path / "graphs.py") in problem
    assert "shadows" in problem
    assert "rename" in problem
    with pytest.raises(ShadowedPackageError):
        require_installation()


def test_the_command_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from verify.cli import main

    fake = types.ModuleType("graphs")
    fake.__file__ = str(tmp_path / "graphs.py")
    monkeypatch.setitem(sys.modules, "graphs", fake)
    assert main(["scaling", "--arch", "dense", "--dims", "8,16"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("verify: error: 'import graphs' finds ")


def test_a_users_graphs_py_beside_the_script(tmp_path):
    """End to end, as a user meets it: their graphs.py in the folder they run Python from."""
    (tmp_path / "graphs.py").write_text("print('the user graphs module ran')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from verify.cli import main; sys.exit(main(['paths', '--arch', 'dense', '--dims', '4']))"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""  # the foreign module was never executed
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert str(tmp_path / "graphs.py") in lines[0]
    assert not (tmp_path / "reports").exists()
    # the library's lazy names say the same instead of "'graphs' is not a package"
    code = "import verify; verify.check_scaling"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert "ShadowedPackageError" in run.stderr
    assert "graphs.py" in run.stderr.splitlines()[-1]
