"""Fixtures shared across test folders."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adaptive_svdprune.tradeoffs.results import TrialResult
from tests._trials import make_trials


@pytest.fixture
def trials_factory() -> Callable[..., list[TrialResult]]:
    return make_trials


@pytest.fixture
def trials() -> list[TrialResult]:
    """Six trials: front is t4 (0.5, 0.5), t0 (0.6, 1.0), t2 (0.7, 2.0)."""
    return make_trials(
        [(0.6, 1.0), (0.55, 1.5), (0.7, 2.0), (0.65, 2.5), (0.5, 0.5), (0.4, 0.8)], [None, 32, 64, None, 16, 8]
    )
