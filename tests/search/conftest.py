"""Fixtures of the search tests (data builders live in :mod:`tests.search._data`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.search._data import write_nni_db


@pytest.fixture
def nni_root(tmp_path: Path) -> Path:
    """An NNI working directory holding experiment ``exp123`` (see :data:`NNI_TRIALS`)."""
    write_nni_db(tmp_path / "nni" / "exp123" / "db" / "nni.sqlite")
    return tmp_path / "nni"
