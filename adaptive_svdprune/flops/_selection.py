"""Analytic FLOPs of SVD-Prune's own token selection on one image's feature matrix F (T x D).

``FlopCounterMode`` has no formula for LAPACK/cuSOLVER factorisations, so the selector is counted
analytically, with the same convention as the rest of the package: one multiply-add is 2 FLOPs, and the
factorisation counts are the standard ones from Golub & Van Loan, *Matrix Computations* (4th ed., fig. 8.6.1
and sec. 8.3), for an m x n matrix with m >= n:

- ``"svd"``: thin SVD returning U1, S and V (``torch.linalg.svd(full_matrices=False)``), R-SVD count
  ``6 m n^2 + 20 n^3`` with ``m = max(T, D)``, ``n = min(T, D)``.
- ``"gram"``: Gram matrix on the smaller side (``2 T D n``), symmetric eigendecomposition with all
  eigenvectors (``9 n^3``, tridiagonalisation + implicit QR), and, when ``D < T``, ``U = F V`` (``2 T D^2``).
- ``"lowrank"``: the randomized range finder of :mod:`adaptive_svdprune.pruning.solvers` (Halko et al.
  2011): sketches of ``r + 8`` columns with 3 power iterations, ``r`` = 16, 32, 64, ... until ``r`` reaches
  the rank k that epsilon needs, falling back to ``"gram"`` once a sketch would exceed a quarter of ``n``. One
  sketch of width ``w`` costs ``2 T D w (2 + 2 q)`` for the products with F, Householder QRs ``4 m w^2`` each
  (``q + 1`` on T x w, ``q`` on D x w), the small SVD of the w x D matrix (``6 D w^2 + 20 w^3``) and
  ``U = Q U_B`` (``2 T w^2``).
- ``"auto"``: resolved as the pruning module does (``resolve_solver``): ``"gram"`` when ``min(T, D) > 64``,
  else ``"svd"``.

All solvers add the leverage scores ``l_t = sum_{i<=k} U[t, i]^2`` (``2 T k``); the top-K / cumulative
selection is comparisons and a sort, not FLOPs.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DEFAULT_LOWRANK_RANK", "SELECTION_SOLVERS", "SelectionSolver", "selection_flops"]

SelectionSolver = Literal["svd", "gram", "lowrank", "auto"]

#: Solver names accepted by :func:`selection_flops` (the names the pruning module uses).
SELECTION_SOLVERS: tuple[str, ...] = ("svd", "gram", "lowrank", "auto")

#: Rank assumed for ``"lowrank"`` when none is given (the solver needs one; pass the rank in use).
DEFAULT_LOWRANK_RANK = 64


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _sketch_flops(T: int, D: int, width: int, niter: int) -> int:
    products = 2 * T * D * width * (2 + 2 * niter)
    qrs = 4 * T * width**2 * (niter + 1) + 4 * D * width**2 * niter
    return products + qrs + 6 * D * width**2 + 20 * width**3 + 2 * T * width**2


def selection_flops(
    T: int,
    D: int,
    solver: str = "svd",
    rank: int | None = None,
    *,
    oversample: int = 8,
    niter: int = 3,
    start_rank: int = 16,
) -> int:
    """FLOPs of SVD-Prune's selection for one image (see the module docstring for the counts used).

    Args:
        T: tokens in the feature matrix (576 for LLaVA-1.5).
        D: feature width (the vision hidden size, 1024 for CLIP ViT-L).
        solver: ``"svd"``, ``"gram"``, ``"lowrank"`` or ``"auto"``.
        rank: the rank k that the variance threshold gives (singular vectors used for the leverage scores;
            for ``"lowrank"`` it also decides how many sketches are tried). ``None`` means ``min(T, D)`` for
            the exact solvers and :data:`DEFAULT_LOWRANK_RANK` for ``"lowrank"``.
        oversample: extra random columns per ``"lowrank"`` sketch.
        niter: power iterations per ``"lowrank"`` sketch.
        start_rank: rank of the first ``"lowrank"`` sketch (doubled until it reaches ``rank``).

    Returns:
        FLOPs (2 per multiply-add) as an int.

    Raises:
        ValueError: for an unknown solver, non-positive sizes or a rank above ``min(T, D)``.

    Example:
        >>> selection_flops(576, 1024, "svd")  # 6*1024*576**2 + 20*576**3 + 2*576*576
        5861154816
        >>> selection_flops(576, 1024, "auto", rank=32) == selection_flops(576, 1024, "gram", rank=32)
        True
        >>> selection_flops(576, 1024, "lowrank", rank=32) < selection_flops(576, 1024, "gram", rank=32)
        True
    """
    _check_positive("T", T)
    _check_positive("D", D)
    if solver not in SELECTION_SOLVERS:
        raise ValueError(f"unknown selection solver {solver!r}; expected one of {', '.join(SELECTION_SOLVERS)}")
    n = min(T, D)
    if rank is None:
        rank = min(DEFAULT_LOWRANK_RANK, n) if solver == "lowrank" else n
    _check_positive("rank", rank)
    if rank > n:
        raise ValueError(f"rank must be <= min(T, D) = {n}, got {rank}")
    if solver == "auto":
        solver = "gram" if n > 64 else "svd"
    leverage = 2 * T * rank
    if solver == "svd":
        m = max(T, D)
        return 6 * m * n * n + 20 * n**3 + leverage
    gram = 2 * T * D * n + 9 * n**3 + (2 * T * D * D if D < T else 0) + leverage
    if solver == "gram":
        return gram
    if oversample < 0 or niter < 0 or start_rank < 1:
        raise ValueError(f"need oversample, niter >= 0 and start_rank >= 1, got {oversample=}, {niter=}, {start_rank=}")
    flops, sketch_rank = 0, min(start_rank, n)
    while True:
        width = min(sketch_rank + oversample, n)
        if 4 * width > n:  # the solver falls back to the exact Gram route
            return flops + gram
        flops += _sketch_flops(T, D, width, niter)
        if sketch_rank >= rank:
            return flops + leverage
        sketch_rank *= 2
