from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_svdprune.pruning import SVDPruneConfig, leverage_scores, rank_for_variance, svd_select
from tests.pruning.reference import low_rank_features, reference_select, spectrum_matrix

# epsilon = 1.0 asks for the numerical rank, which float32 and float64 legitimately disagree on for noisy
# spectra; it is tested on exactly low-rank inputs below.
EPS = [pytest.param(e, id=f"eps{e}") for e in (0.7, 0.9, 0.95)]


@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("decay", [0.5, 1.0, 2.0], ids=lambda d: f"decay{d}")
def test_leverage_and_rank_match_numpy_reference(eps: float, decay: float) -> None:
    rng = np.random.default_rng(0)
    sv = 10.0 * np.arange(1, 41, dtype=np.float64) ** -decay
    F = spectrum_matrix(rng, 96, 64, sv)
    _, ref_lev, ref_k = reference_select(F, eps, budget=8)
    scores, rank = leverage_scores(torch.tensor(F, dtype=torch.float32), eps, solver="svd")
    assert int(rank) == ref_k
    np.testing.assert_allclose(scores.numpy(), ref_lev, atol=2e-5)


@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("budget", [1, 16, None], ids=["K1", "K16", "adaptive"])
def test_selection_matches_numpy_reference(eps: float, budget: int | None) -> None:
    rng = np.random.default_rng(1)
    F = np.stack([low_rank_features(rng, 144, 48, rank=6) for _ in range(3)])
    sel = svd_select(torch.tensor(F, dtype=torch.float32), SVDPruneConfig(eps, budget=budget, solver="svd"))
    for b in range(3):
        ref_idx, _, ref_k = reference_select(F[b], eps, budget)
        assert sel.indices[b].tolist() == ref_idx
        assert int(sel.rank[b]) == ref_k


@pytest.mark.parametrize("solver", ["svd", "gram", "lowrank"])
def test_epsilon_one_gives_the_exact_rank(solver: str) -> None:
    F = spectrum_matrix(np.random.default_rng(7), 100, 60, np.array([5.0, 3.0, 2.0, 1.0, 0.5]))
    scores, rank = leverage_scores(torch.tensor(F, dtype=torch.float32), 1.0, solver=solver)
    assert int(rank) == 5
    _, ref_lev, _ = reference_select(F, 1.0, budget=1)
    np.testing.assert_allclose(scores.numpy(), ref_lev, atol=1e-4)


def test_rank_for_variance_by_hand() -> None:
    sq = torch.tensor([[50.0, 30.0, 15.0, 5.0]])
    total = sq.sum(-1)
    assert rank_for_variance(sq, total, 0.5).tolist() == [1]
    assert rank_for_variance(sq, total, 0.8).tolist() == [2]
    assert rank_for_variance(sq, total, 0.81).tolist() == [3]
    assert rank_for_variance(sq, total, 1.0).tolist() == [4]


@st.composite
def feature_batches(draw: st.DrawFn) -> np.ndarray:
    T = draw(st.integers(2, 40))
    D = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).standard_normal((T, D)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(F=feature_batches(), eps=st.floats(0.05, 1.0), seed=st.integers(0, 1000))
def test_permuting_tokens_permutes_selection(F: np.ndarray, eps: float, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(F.shape[0])
    x = torch.tensor(F)
    base_scores, _ = leverage_scores(x, eps)
    perm_scores, _ = leverage_scores(x[perm], eps)
    torch.testing.assert_close(perm_scores, base_scores[perm], atol=1e-4, rtol=1e-4)
    # with distinct leverage the adaptive set is permutation-equivariant
    gaps = np.diff(np.sort(base_scores.numpy()))
    if gaps.size and gaps.min() > 1e-3:
        cfg = SVDPruneConfig(eps)
        kept = set(svd_select(x, cfg).indices[0].tolist())
        kept_perm = {int(perm[i]) for i in svd_select(x[perm], cfg).indices[0].tolist()}
        assert kept == kept_perm


@settings(max_examples=40, deadline=None)
@given(F=feature_batches(), eps=st.floats(0.05, 1.0), budget=st.integers(1, 60))
def test_selection_size_sum_and_order(F: np.ndarray, eps: float, budget: int) -> None:
    x = torch.tensor(F)
    scores, rank = leverage_scores(x, eps)
    assert 1 <= int(rank) <= min(F.shape)
    assert float(scores.sum()) == pytest.approx(int(rank), rel=1e-4)
    sel = svd_select(x, SVDPruneConfig(eps, budget=budget))
    idx = sel.indices[0]
    assert idx.numel() == min(budget, F.shape[0])
    assert torch.equal(idx, torch.sort(idx).values)
    assert idx.unique().numel() == idx.numel()


@settings(max_examples=40, deadline=None)
@given(F=feature_batches(), eps=st.floats(0.05, 1.0))
def test_adaptive_set_reaches_epsilon_and_is_minimal(F: np.ndarray, eps: float) -> None:
    x = torch.tensor(F)
    sel = svd_select(x, SVDPruneConfig(eps))
    k = int(sel.rank[0])
    scores = sel.scores[0].double()
    kept = scores[sel.indices[0]]
    assert float(kept.sum() / k) >= eps - 1e-4
    # dropping the least important kept token falls below epsilon (minimality)
    if kept.numel() > 1:
        assert float((kept.sum() - kept.min()) / k) < eps + 1e-4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64],
                         ids=lambda d: str(d).split(".")[-1])
def test_any_float_dtype_computes_in_float32(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(2)
    F = torch.tensor(low_rank_features(rng, 64, 32, rank=4), dtype=torch.float32)
    sel = svd_select(F.to(dtype), SVDPruneConfig(0.9, budget=8))
    assert sel.scores.dtype == torch.float32
    ref = svd_select(F.to(dtype).float(), SVDPruneConfig(0.9, budget=8))
    assert sel.indices[0].tolist() == ref.indices[0].tolist()


def test_two_dim_and_batched_inputs_agree() -> None:
    F = torch.tensor(low_rank_features(np.random.default_rng(3), 50, 20, rank=3), dtype=torch.float32)
    cfg = SVDPruneConfig(0.9, budget=5)
    single = svd_select(F, cfg)
    batched = svd_select(torch.stack([F, F * 2]), cfg)
    assert single.indices[0].tolist() == batched.indices[0].tolist() == batched.indices[1].tolist()
    assert leverage_scores(torch.stack([F, F])[None], 0.9)[0].shape == (1, 2, 50)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    F = torch.tensor(low_rank_features(np.random.default_rng(4), 576, 1024, rank=8), dtype=torch.float32)
    for solver in ("svd", "gram", "lowrank"):
        cfg = SVDPruneConfig(0.9, budget=32, solver=solver)
        assert svd_select(F.cuda(), cfg).indices[0].cpu().tolist() == svd_select(F, cfg).indices[0].tolist()


def test_mask_excludes_padded_tokens() -> None:
    rng = np.random.default_rng(5)
    F = torch.tensor(low_rank_features(rng, 40, 16, rank=3), dtype=torch.float32)
    padded = torch.cat([F, 100 * torch.randn(10, 16)])[None]
    mask = torch.zeros(1, 50, dtype=torch.bool)
    mask[0, :40] = True
    for budget in (8, None, 100):
        cfg = SVDPruneConfig(0.9, budget=budget)
        masked = svd_select(padded, cfg, mask=mask)
        assert masked.indices[0].tolist() == svd_select(F, cfg).indices[0].tolist()
        assert int(masked.indices[0].max()) < 40
    assert svd_select(padded, SVDPruneConfig(0.9, budget=100), mask=mask).counts == [40]


def test_adaptive_clipping() -> None:
    F = torch.tensor(low_rank_features(np.random.default_rng(6), 64, 16, rank=2), dtype=torch.float32)
    free = svd_select(F, SVDPruneConfig(0.9)).counts[0]
    assert svd_select(F, SVDPruneConfig(0.9, min_tokens=free + 3)).counts == [free + 3]
    assert svd_select(F, SVDPruneConfig(0.9, max_tokens=1)).counts == [1]


def test_ties_go_to_lower_position() -> None:
    F = torch.zeros(6, 6)
    F[[1, 3, 4], [0, 1, 2]] = 1.0  # three orthogonal tokens of equal leverage 1
    assert svd_select(F, SVDPruneConfig(1.0, budget=2)).indices[0].tolist() == [1, 3]


def test_budget_larger_than_tokens_keeps_all() -> None:
    sel = svd_select(torch.randn(2, 7, 5), SVDPruneConfig(0.9, budget=100))
    assert sel.counts == [7, 7]
    assert sel.indices[0].tolist() == list(range(7))


def test_all_zero_features_fall_back_to_uniform_with_warning() -> None:
    F = torch.randn(2, 16, 8)
    F[1] = 0.0
    with pytest.warns(RuntimeWarning, match="image 1: features are all zero"):
        sel = svd_select(F, SVDPruneConfig(0.5, budget=4))
    assert int(sel.rank[1]) == 0
    assert sel.indices[1].tolist() == [2, 6, 10, 14]
    with pytest.warns(RuntimeWarning):
        adaptive = svd_select(torch.zeros(1, 10, 4), SVDPruneConfig(0.5))
    assert adaptive.counts == [5]
    scores, rank = leverage_scores(torch.zeros(3, 4), 0.9)
    assert int(rank) == 0 and float(scores.abs().sum()) == 0.0


@pytest.mark.parametrize(
    ("F", "mask", "error", "match"),
    [
        pytest.param(torch.randn(5), None, ValueError, "at least 2 dims", id="1d"),
        pytest.param(torch.randn(2, 3, 4, 5), None, ValueError, r"\(T, D\) or \(B, T, D\)", id="4d"),
        pytest.param(torch.randn(2, 0, 4), None, ValueError, "no tokens", id="no-tokens"),
        pytest.param(torch.randn(2, 3, 0), None, ValueError, "no feature channels", id="no-channels"),
        pytest.param(torch.tensor([[1.0, float("nan")]]), None, ValueError, "1 NaN or Inf", id="nan"),
        pytest.param(torch.tensor([[1.0, float("inf")]]), None, ValueError, "NaN or Inf", id="inf"),
        pytest.param(torch.ones(2, 3, dtype=torch.int64), None, TypeError, "floating-point", id="int"),
        pytest.param([[1.0]], None, TypeError, "torch.Tensor", id="list"),
        pytest.param(torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool), ValueError, "mask must have shape",
                     id="mask-shape"),
        pytest.param(torch.randn(2, 3, 4), torch.ones(2, 3), TypeError, "bool", id="mask-dtype"),
        pytest.param(torch.randn(2, 3, 4), torch.tensor([[True] * 3, [False] * 3]), ValueError,
                     r"mask rows \[1\] have no valid token", id="empty-row"),
    ],
)
def test_bad_features(F: torch.Tensor, mask: torch.Tensor | None, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        svd_select(F, SVDPruneConfig(0.9, budget=2), mask=mask)


SCALES = [pytest.param(s, id=f"x{s:g}") for s in (1e17, 1e30, 1e-25, 1e-30, 3.0**-50)]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("solver", ["svd", "gram", "lowrank"])
@pytest.mark.parametrize("budget", [16, None], ids=["K16", "adaptive"])
def test_selection_is_scale_invariant(scale: float, solver: str, budget: int | None) -> None:
    rng = np.random.default_rng(8)
    F = torch.tensor(np.stack([low_rank_features(rng, 144, 96, rank=6) for _ in range(2)]), dtype=torch.float32)
    cfg = SVDPruneConfig(0.9, budget=budget, solver=solver)  # type: ignore[arg-type]
    base = svd_select(F, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no false "all zero" warning for tiny features
        scaled = svd_select(F * scale, cfg)
    assert [i.tolist() for i in scaled.indices] == [i.tolist() for i in base.indices]
    assert scaled.rank.tolist() == base.rank.tolist()
    torch.testing.assert_close(scaled.scores, base.scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", [pytest.param(s, id=f"x{s:g}") for s in (1e200, 1e-200)])
def test_float64_features_beyond_float32_range(scale: float) -> None:
    F = torch.tensor(low_rank_features(np.random.default_rng(9), 64, 32, rank=4), dtype=torch.float64)
    cfg = SVDPruneConfig(0.9, budget=8)
    assert svd_select(F * scale, cfg).indices[0].tolist() == svd_select(F, cfg).indices[0].tolist()


def test_power_of_two_scaling_is_bit_exact() -> None:
    F = torch.randn(2, 50, 20)
    a, rank_a = leverage_scores(F, 0.9, solver="gram")
    b, rank_b = leverage_scores(F * 2.0**-90, 0.9, solver="gram")
    assert torch.equal(a, b) and torch.equal(rank_a, rank_b)


def test_huge_padded_tokens_do_not_set_the_scale() -> None:
    F = torch.tensor(low_rank_features(np.random.default_rng(10), 40, 16, rank=3), dtype=torch.float32)
    padded = torch.cat([F, torch.full((10, 16), 3e38)])[None]
    mask = torch.arange(50)[None] < 40
    cfg = SVDPruneConfig(0.9, budget=8)
    assert svd_select(padded, cfg, mask=mask).indices[0].tolist() == svd_select(F, cfg).indices[0].tolist()
