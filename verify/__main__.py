"""``python -m verify ...``: the ``verify`` command without the console script (e.g. with ``PYTHONPATH=.``)."""

from verify.cli import entry_point

entry_point()
