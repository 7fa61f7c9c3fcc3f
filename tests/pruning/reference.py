"""An independent NumPy (float64) implementation of SVD-Prune, written from the paper's definition."""

from __future__ import annotations

import numpy as np


def reference_select(F: np.ndarray, eps: float, budget: int | None, min_tokens: int = 1,
                     max_tokens: int | None = None) -> tuple[list[int], np.ndarray, int]:
    F = np.asarray(F, dtype=np.float64)
    U, s, _ = np.linalg.svd(F, full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.searchsorted(share, eps - 1e-9) + 1)
    lev = np.sum(U[:, :k] ** 2, axis=1)
    # descending leverage, ties to the lower position
    order = sorted(range(len(lev)), key=lambda t: (-lev[t], t))
    if budget is not None:
        n = min(budget, len(lev))
    else:
        acc, n = 0.0, 0
        while acc / k < eps - 1e-9:
            acc += lev[order[n]]
            n += 1
        n = max(n, min_tokens)
        if max_tokens is not None:
            n = min(n, max_tokens)
        n = min(n, len(lev))
    return sorted(order[:n]), lev, k


def spectrum_matrix(rng: np.random.Generator, T: int, D: int, singular: np.ndarray) -> np.ndarray:
    """A ``T x D`` matrix with the given singular values and random singular vectors."""
    r = len(singular)
    U, _ = np.linalg.qr(rng.standard_normal((T, r)))
    V, _ = np.linalg.qr(rng.standard_normal((D, r)))
    return (U * singular) @ V.T


def low_rank_features(rng: np.random.Generator, T: int, D: int, rank: int, noise: float = 1e-3) -> np.ndarray:
    """Well-conditioned features for selection: a clear spectral gap and tokens of very different leverage."""
    token_weight = rng.uniform(0.05, 3.0, size=(T, 1)) ** 2
    A = rng.standard_normal((T, rank)) * token_weight
    B = rng.standard_normal((rank, D))
    return A @ B + noise * rng.standard_normal((T, D))
