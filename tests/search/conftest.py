"""Fixtures of the search tests (data builders live in :mod:`tests.search._data`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptive_svdprune.search.results import TrialResult
from tests.search._data import make_trials, write_nni_db


@pytest.fixture
def nni_root(tmp_path: Path) -> Path:
    """An NNI working directory holding experiment ``exp123`` (see :data:`NNI_TRIALS`)."""
    write_nni_db(tmp_path / "nni" / "exp123" / "db" / "nni.sqlite")
    return tmp_path / "nni"


@pytest.fixture
def trials_factory() -> Callable[..., list[TrialResult]]:
    return make_trials


@pytest.fixture
def trials() -> list[TrialResult]:
    """Six trials: front is t4 (0.5, 0.5), t0 (0.6, 1.0), t2 (0.7, 2.0)."""
    return make_trials(
        [(0.6, 1.0), (0.55, 1.5), (0.7, 2.0), (0.65, 2.5), (0.5, 0.5), (0.4, 0.8)], [None, 32, 64, None, 16, 8]
    )
