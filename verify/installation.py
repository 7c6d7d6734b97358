"""Is the ``graphs`` and ``verify`` Python imports this toolkit's own?

Both are generic names: a user's ``graphs.py`` (or ``verify.py``, or a ``graphs`` package of
another project) beside their script, in the current folder or earlier on ``PYTHONPATH``,
is imported instead of the toolkit's, and the first ``from graphs.spec import ...`` then fails
with "'graphs' is not a package", far from the cause. ``installation_problem()`` compares
where each name is (or would be) imported from with the folder this file lives in, without
executing a foreign module, and says what shadows what in one line. The command line
(``verify.cli.main``) and the package's lazy names (``verify.__getattr__``) call it first.

It imports nothing but the standard library, so it works however broken the rest is.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["EXPECTED_MODULES", "ShadowedPackageError", "installation_problem", "require_installation"]

# Modules each package must have: a stale or partial copy lacks some of them.
EXPECTED_MODULES: dict[str, tuple[str, ...]] = {
    "graphs": ("errors", "families", "spec", "rng", "layers"),
    "verify": ("cli", "memory", "results", "stats", "report"),
}


class ShadowedPackageError(ImportError):
    """``graphs`` or ``verify`` is imported from somewhere other than this toolkit."""


def _root() -> Path:
    return Path(__file__).resolve().parent.parent


def _location(name: str) -> tuple[str | None, bool]:
    """Where ``name`` is imported from (its file, or None) and whether it is a package; an
    already imported module is asked, otherwise the import system (which executes nothing)."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None), hasattr(module, "__path__")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None, False
    if spec is None:
        return None, False
    return spec.origin, spec.submodule_search_locations is not None


def installation_problem() -> str | None:
    """None when ``graphs`` and ``verify`` are this toolkit's complete packages; else one line
    saying which name is shadowed, by what, and what to do."""
    root = _root()
    for name, modules in EXPECTED_MODULES.items():
        ours = root / name
        origin, is_package = _location(name)
        if origin is None:
            return (
                f"the toolkit's '{name}' package cannot be imported (expected in {ours}); "
                "reinstall it: python3 -m pip install -e ."
            )
        where = Path(origin).resolve()
        if not is_package or where.parent != ours:
            return (
                f"'import {name}' finds {where}, not this toolkit's package in {ours}: a file or folder of "
                f"yours named {name} shadows it; rename it, or run from another folder"
            )
        missing = [m for m in modules if not (ours / f"{m}.py").exists() and not (ours / m / "__init__.py").exists()]
        if missing:
            return (
                f"the '{name}' package in {ours} lacks {', '.join(missing)}: the installation is incomplete; "
                "reinstall it: python3 -m pip install -e ."
            )
    return None


def require_installation() -> None:
    """Raise ``ShadowedPackageError`` (an ImportError with the one-line reason) on a problem."""
    problem = installation_problem()
    if problem is not None:
        raise ShadowedPackageError(problem)
