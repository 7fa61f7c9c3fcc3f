"""Fixtures shared across test folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

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


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny matmuls are much faster single-threaded, above all on a shared, oversubscribed CPU.

    Modules that load models opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
