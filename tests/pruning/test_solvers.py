from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptive_svdprune.pruning import SVDPruneConfig, leverage_scores, svd_select
from adaptive_svdprune.pruning.solvers import resolve_solver
from tests.pruning.reference import low_rank_features, reference_select, spectrum_matrix

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


def _spiked(seed: int, shape: tuple[int, int], spike: float) -> np.ndarray:
    """Noise of uneven token norms plus one direction ``spike`` times the noise's largest singular value."""
    rng = np.random.default_rng(seed)
    T, D = shape
    base = rng.standard_normal((T, D)) * rng.uniform(0.2, 2.0, size=(T, 1))
    u, v = rng.standard_normal(T), rng.standard_normal(D)
    direction = np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    return (base + spike * np.linalg.norm(base, 2) * direction).astype(np.float32)


def _clear_reference(F: np.ndarray, eps: float, budget: int | None) -> tuple[list[int], int] | None:
    """The float64 reference selection, or None where float64 itself sits on a near-tie at a threshold."""
    ref, lev, k = reference_select(F.astype(np.float64), eps, budget)
    s = np.linalg.svd(F.astype(np.float64), compute_uv=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    if np.min(np.abs(share - eps)) < 1e-6:  # the rank itself is on a knife edge
        return None
    order = np.sort(lev)[::-1]
    n = len(ref)
    if n < len(lev) and order[n - 1] - order[n] < 1e-7 * order[0]:  # the last kept token ties the next one
        return None
    if budget is None and abs(np.sum(order[: n - 1]) / k - eps) < 1e-6:  # adaptive count on a knife edge
        return None
    return ref, k


@pytest.mark.parametrize("spike", [30.0, 1e2, 1e3, 1e4], ids=lambda s: f"spike{s:g}")
@pytest.mark.parametrize("eps", [0.99, 0.999, 0.9999], ids=lambda e: f"eps{e}")
@pytest.mark.parametrize("shape", [pytest.param((576, 128), id="tall-576x128"),
                                   pytest.param((144, 96), id="tall-144x96"),
                                   pytest.param((96, 200), id="wide-96x200")])
def test_gram_selects_like_float64_svd_when_one_direction_dominates(
    spike: float, eps: float, shape: tuple[int, int]
) -> None:
    # The former float32 Gram route swapped tokens on these (forming F F^T squares the condition number).
    checked = 0
    for seed in range(3):
        F = _spiked(seed, shape, spike)
        for budget in (8, 32, None):
            reference = _clear_reference(F, eps, budget)
            if reference is None:
                continue
            checked += 1
            sel = svd_select(torch.tensor(F), SVDPruneConfig(eps, budget=budget, solver="gram"))
            assert (sel.indices[0].tolist(), int(sel.rank[0])) == reference, f"seed {seed}, budget {budget}"
    assert checked >= 3  # float64 decides most configurations clearly


def _mixed_batch() -> torch.Tensor:
    """Three images the randomized solver treats differently: fast decay, slower decay, a flat tail."""
    rng = np.random.default_rng(11)
    spectra = [0.5 ** np.arange(60), 0.93 ** np.arange(60), np.concatenate([0.8 ** np.arange(20), np.full(40, 0.3)])]
    return torch.tensor(np.stack([spectrum_matrix(rng, 160, 120, s) for s in spectra]), dtype=torch.float32)


@pytest.mark.parametrize("budget", [16, None], ids=["K16", "adaptive"])
@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)], ids=["012", "210", "120"])
def test_lowrank_selects_the_same_tokens_alone_and_in_any_batch(budget: int | None, order: tuple[int, ...]) -> None:
    F = _mixed_batch()
    cfg = SVDPruneConfig(0.95, budget=budget, solver="lowrank")
    batch = svd_select(F[list(order)], cfg)
    for position, image in enumerate(order):
        alone = svd_select(F[image], cfg)
        assert batch.indices[position].tolist() == alone.indices[0].tolist(), f"image {image} at {position}"
        assert torch.equal(batch.scores[position], alone.scores[0]), f"image {image} at {position}"
        assert int(batch.rank[position]) == int(alone.rank[0])
