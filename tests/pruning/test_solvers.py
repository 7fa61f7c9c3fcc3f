from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptive_svdprune.pruning import SVDPruneConfig, leverage_scores, svd_select
from adaptive_svdprune.pruning.solvers import resolve_solver
from tests.pruning.reference import low_rank_features, spectrum_matrix

SOLVERS = ["svd", "gram", "lowrank", "auto"]
SHAPES = [pytest.param((576, 1024), id="llava-576x1024"), pytest.param((300, 64), id="tall-300x64"),
          pytest.param((96, 200), id="wide-96x200")]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("budget", [16, None], ids=["K16", "adaptive"])
def test_every_solver_selects_like_exact_svd(solver: str, shape: tuple[int, int], budget: int | None) -> None:
    rng = np.random.default_rng(0)
    F = torch.tensor(np.stack([low_rank_features(rng, *shape, rank=8) for _ in range(2)]), dtype=torch.float32)
    exact = svd_select(F, SVDPruneConfig(0.9, budget=budget, solver="svd"))
    other = svd_select(F, SVDPruneConfig(0.9, budget=budget, solver=solver))  # type: ignore[arg-type]
    assert [i.tolist() for i in other.indices] == [i.tolist() for i in exact.indices]
    assert other.rank.tolist() == exact.rank.tolist()


@pytest.mark.parametrize("solver", ["gram", "lowrank"])
def test_leverage_close_on_decaying_spectrum(solver: str) -> None:
    F = torch.tensor(spectrum_matrix(np.random.default_rng(1), 576, 1024, 100.0 / np.arange(1, 577)),
                     dtype=torch.float32)
    exact, k = leverage_scores(F, 0.9, solver="svd")
    approx, k2 = leverage_scores(F, 0.9, solver=solver)
    assert int(k) == int(k2)
    torch.testing.assert_close(approx, exact, atol=1e-4, rtol=0)


def test_lowrank_grows_until_epsilon_is_captured() -> None:
    # epsilon=0.95 needs ~25 directions, beyond the first 16-column sketch but well below half the range
    sv = np.concatenate([0.92 ** np.arange(30), np.full(170, 0.02)])
    F = torch.tensor(spectrum_matrix(np.random.default_rng(2), 300, 200, sv), dtype=torch.float32)
    exact, k = leverage_scores(F, 0.95, solver="svd")
    approx, k2 = leverage_scores(F, 0.95, solver="lowrank")
    assert int(k) == int(k2) > 16
    torch.testing.assert_close(approx, exact, atol=1e-4, rtol=0)


def test_lowrank_falls_back_to_exact_on_flat_spectra() -> None:
    sv = np.linspace(2.0, 1.0, 80)  # slowly decaying: epsilon needs most of the range
    F = torch.tensor(spectrum_matrix(np.random.default_rng(3), 120, 80, sv), dtype=torch.float32)
    exact, k = leverage_scores(F, 0.95, solver="svd")
    approx, k2 = leverage_scores(F, 0.95, solver="lowrank")
    assert int(k) == int(k2) > 60
    torch.testing.assert_close(approx, exact, atol=1e-4, rtol=0)


def test_lowrank_is_deterministic() -> None:
    F = torch.randn(2, 200, 100)
    a, _ = leverage_scores(F, 0.5, solver="lowrank")
    b, _ = leverage_scores(F, 0.5, solver="lowrank")
    assert torch.equal(a, b)


def test_auto_resolution() -> None:
    assert resolve_solver("auto", torch.empty(1, 576, 1024)) == "gram"
    assert resolve_solver("auto", torch.empty(1, 576, 32)) == "svd"
    assert resolve_solver("gram", torch.empty(1, 4, 4)) == "gram"
    with pytest.raises(ValueError, match="'eig'"):
        resolve_solver("eig", torch.empty(1, 4, 4))
