"""SVD-Prune: leverage scores of the vision features and the token selection built on them.

Semantics (per image, ``F`` of shape ``T x D``, computed in float32 whatever the input dtype):

* ``F = U S V^T``; the rank ``k`` is the smallest with ``sum_{i<=k} s_i^2 / ||F||_F^2 >= epsilon`` (``k >= 1``).
* leverage ``l_t = sum_{i<=k} U[t, i]^2``; the scores sum to ``k`` over the tokens.
* fixed budget ``K``: the ``K`` tokens of highest leverage (ties to the lower position); adaptive: the smallest
  set, by descending leverage, whose ``sum l_t / k`` reaches epsilon, clipped to ``[min_tokens, max_tokens]``.
* indices are returned ascending, so kept tokens keep their original order.
* scale-invariant: each image is first scaled by a power of two (exact) so that float32 neither overflows nor
  underflows; ``c F`` selects what ``F`` selects for any ``c > 0`` (1e-30 and 1e17 included). Only an image that
  is exactly zero takes the rank-0 path; NaN or Inf features are refused with a ``ValueError``.

Example:
    >>> import torch
    >>> F = torch.randn(576, 64)
    >>> scores, rank = leverage_scores(F, variance_threshold=0.9)
    >>> bool(torch.isclose(scores.sum(), rank.float(), rtol=1e-4))
    True
"""

from __future__ import annotations

import warnings

import torch

from adaptive_svdprune.pruning.config import SVDPruneConfig, register_selector
from adaptive_svdprune.pruning.selection import TokenSelection
from adaptive_svdprune.pruning.solvers import resolve_solver, top_subspace
from adaptive_svdprune.pruning.validation import as_batch

__all__ = ["leverage_scores", "rank_for_variance", "svd_select", "uniform_positions"]

# Relative slack on cumulative shares, so float32 round-off cannot push the rank (or the adaptive count)
# one past the mathematically exact answer (e.g. epsilon = 1.0 on a rank-deficient F).
_SHARE_TOL = 1e-6


def rank_for_variance(sq_singular: torch.Tensor, total: torch.Tensor, variance_threshold: float) -> torch.Tensor:
    """Smallest ``k >= 1`` whose leading squared singular values reach ``epsilon * total``.

    Args:
        sq_singular: ``(..., r)`` squared singular values, descending.
        total: ``(...)`` total variance ``||F||_F^2`` (may exceed ``sq_singular.sum(-1)`` for partial spectra).
        variance_threshold: epsilon in (0, 1].

    Returns:
        ``(...)`` int64 ranks; ``r`` where the computed part of the spectrum does not reach epsilon.

    Example:
        >>> rank_for_variance(torch.tensor([9.0, 4.0, 1.0]), torch.tensor(14.0), 0.9).item()
        2
    """
    cum = sq_singular.double().cumsum(-1)
    target = (variance_threshold * (1.0 - _SHARE_TOL)) * total.double().unsqueeze(-1)
    below = (cum < target).sum(-1)
    return (below + 1).clamp(max=sq_singular.shape[-1]).to(torch.int64)


def _leverage_from_basis(basis: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    columns = torch.arange(basis.shape[-1], device=basis.device)
    keep = (columns < rank.to(basis.device).unsqueeze(-1)).to(basis.dtype)  # (..., r)
    return (basis.square() * keep.unsqueeze(-2)).sum(-1)


def leverage_scores(
    F: torch.Tensor,
    variance_threshold: float = 0.9,
    *,
    solver: str = "svd",
    mask: torch.Tensor | None = None,
    center: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leverage score of every token and the rank used.

    Args:
        F: ``(..., T, D)`` features, any float dtype and device.
        variance_threshold: epsilon in (0, 1].
        solver: ``"svd"``, ``"gram"``, ``"lowrank"`` or ``"auto"`` (see :mod:`adaptive_svdprune.pruning.solvers`).
        mask: optional ``(..., T)`` bool, False for padded tokens (excluded from the decomposition, score 0).
        center: subtract the mean of the valid tokens first.

    Returns:
        ``(scores, rank)``: float32 ``(..., T)`` with ``scores.sum(-1) == rank``; int64 ``(...)``. An image
        whose features are all zero has rank 0 and all-zero scores.
    """
    SVDPruneConfig(variance_threshold=variance_threshold, solver=solver)  # type: ignore[arg-type]  # validates
    batch, mask_b, lead = as_batch(F, mask)
    scores, rank = _leverage(batch, mask_b, variance_threshold, solver, center)
    return scores.float().reshape(*lead, -1), rank.reshape(lead)


def _normalised(F: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``F`` (padded tokens zeroed) as float32, each image scaled by a power of two into ``[0.5, 1)`` max-abs.

    Leverage, rank and selection are scale-invariant, but float32 is not: ``||F||^2`` overflows from ~1e19 and
    underflows below ~1e-23 (which read as "all zero"). Scaling by a power of two only changes exponents, so
    it is exact: ``F`` and ``2^j F`` give bit-identical selections. The scale comes from the input dtype
    (float64 features above float32's range are scaled before the cast); an all-zero image stays zero.
    """
    x = F if F.dtype == torch.float64 else F.float()
    if mask is not None:
        x = x * mask.unsqueeze(-1).to(x.dtype)
    exponent = torch.frexp(x.abs().amax(dim=(-2, -1))).exponent.to(x.dtype)  # peak = m 2^e, m in [0.5, 1)
    # two factors, each within the dtype's exponent range (2^e alone can overflow when e is very negative)
    first = torch.floor(-exponent / 2)
    for power in (first, -exponent - first):
        x = x * torch.pow(2.0, power).to(x.dtype)[:, None, None]
    return x.float()


def _leverage(
    F: torch.Tensor, mask: torch.Tensor | None, eps: float, solver: str, center: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 leverage ``(N, T)`` (ranked at full precision, returned to users as float32) and int64 ranks."""
    x = _normalised(F, mask)
    if center:
        n_valid = mask.sum(-1, keepdim=True).clamp(min=1) if mask is not None else x.shape[-2]
        x = x - x.sum(-2, keepdim=True) / torch.as_tensor(n_valid, dtype=x.dtype).unsqueeze(-1)
        if mask is not None:
            x = x * mask.unsqueeze(-1)
    total = x.double().square().sum((-2, -1))
    basis, sq_singular = top_subspace(x, eps, total, resolve_solver(solver, x))
    rank = rank_for_variance(sq_singular, total, eps)
    rank = torch.where(total > 0, rank, torch.zeros_like(rank))
    return _leverage_from_basis(basis.double(), rank), rank


def uniform_positions(n_valid: int, count: int) -> torch.Tensor:
    """``count`` positions spread evenly over ``range(n_valid)`` (used when leverage carries no information).

    Example:
        >>> uniform_positions(10, 3).tolist()
        [1, 5, 8]
    """
    count = max(0, min(count, n_valid))
    return ((torch.arange(count, dtype=torch.float64) + 0.5) * n_valid / max(count, 1)).floor().long()


def _adaptive_count(sorted_scores: torch.Tensor, rank: int, eps: float) -> int:
    cum = sorted_scores.double().cumsum(0) / rank
    return int((cum < eps * (1.0 - _SHARE_TOL)).sum().item()) + 1


def svd_select(F: torch.Tensor, config: SVDPruneConfig, mask: torch.Tensor | None = None) -> TokenSelection:
    """Select tokens by leverage score (SVD-Prune).

    Args:
        F: ``(B, T, D)`` or ``(T, D)`` features (a 2-D input is treated as one image).
        config: the :class:`SVDPruneConfig`.
        mask: optional ``(B, T)`` (or ``(T,)``) bool, False for padded tokens; they are never selected.

    Returns:
        A :class:`TokenSelection` with ascending indices. A budget larger than the number of valid tokens keeps
        all of them. An image whose features are all zero has rank 0: its leverage is undefined, so it falls
        back to evenly spread tokens (``budget`` of them, or ``ceil(epsilon * T_valid)`` when adaptive) and a
        ``RuntimeWarning`` is issued.

    Example:
        >>> import torch
        >>> F = torch.zeros(1, 6, 4); F[0, 2, 0] = 5.0; F[0, 4, 1] = 1.0
        >>> svd_select(F, SVDPruneConfig(variance_threshold=0.9, budget=1)).indices[0].tolist()
        [2]
        >>> svd_select(F, SVDPruneConfig(variance_threshold=0.99)).indices[0].tolist()
        [2, 4]
    """
    if not isinstance(config, SVDPruneConfig):
        raise TypeError(f"config must be an SVDPruneConfig, got {type(config).__name__}")
    batch, mask_b, _ = as_batch(F, mask, max_lead_dims=1)
    scores, rank = _leverage(batch, mask_b, config.variance_threshold, config.solver, config.center)
    n_tokens = batch.shape[-2]
    valid_counts = mask_b.sum(-1).tolist() if mask_b is not None else [n_tokens] * batch.shape[0]
    ranked = scores.masked_fill(~mask_b, float("-inf")) if mask_b is not None else scores.clone()
    # stable descending sort: equal leverage keeps the lower position first
    order = torch.sort(ranked, dim=-1, descending=True, stable=True).indices.cpu()
    sorted_scores = torch.gather(ranked, -1, order.to(ranked.device)).cpu()
    rank_cpu = rank.cpu()

    indices = []
    for b in range(batch.shape[0]):
        n_valid, k = int(valid_counts[b]), int(rank_cpu[b])
        if config.budget is not None:
            count = min(config.budget, n_valid)
        else:
            count = _adaptive_count(sorted_scores[b, :n_valid], k, config.variance_threshold) if k > 0 else (
                int(torch.tensor(config.variance_threshold * n_valid * (1 - _SHARE_TOL)).ceil()))
            count = max(count, config.min_tokens)
            if config.max_tokens is not None:
                count = min(count, config.max_tokens)
            count = min(count, n_valid)
        if k == 0:
            warnings.warn(
                f"image {b}: features are all zero (rank 0), leverage is undefined; keeping {count} evenly "
                "spread tokens",
                RuntimeWarning,
                stacklevel=2,
            )
            valid_pos = mask_b[b].nonzero().squeeze(-1).cpu() if mask_b is not None else torch.arange(n_valid)
            kept = valid_pos[uniform_positions(n_valid, count)]
        else:
            kept = order[b, :count]
        indices.append(torch.sort(kept).values.to(F.device))
    scores = scores.float()
    scores = scores.masked_fill(~mask_b, float("-inf")) if mask_b is not None else scores
    return TokenSelection(indices, scores, rank, method="svd")


@register_selector("svd")
def _svd_handler(
    features: torch.Tensor, config: SVDPruneConfig, mask: torch.Tensor | None = None, **context: torch.Tensor
) -> TokenSelection:
    return svd_select(features, config, mask=mask)

