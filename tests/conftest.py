"""Hypothesis profiles and the ``slow`` marker.

``pytest`` (profile ``default``) and ``CI=true pytest`` (profile ``ci``) run the fast suite;
``pytest --hypothesis-profile=thorough`` is the proof check: many more examples, larger
graphs, and the ``slow`` statistical sweeps.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# One torch thread per test process: the suite's tensors are small, and two threads on two
# loaded cores stall at every parallel region (the suite took 308 s instead of 83 s).
torch.set_num_threads(1)

settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough",
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def thorough(config: pytest.Config) -> bool:
    return config.getoption("hypothesis_profile", default=None) == "thorough"


@pytest.fixture
def is_thorough(request: pytest.FixtureRequest) -> bool:
    """True under ``--hypothesis-profile=thorough``: tests may then use larger graphs."""
    return thorough(request.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if thorough(config) or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --hypothesis-profile=thorough or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
