"""Analytic FLOPs of SVD-Prune's own token selection on one image's feature matrix F (T x D).

``FlopCounterMode`` has no formula for LAPACK/cuSOLVER factorisations, so the selector is counted
analytically, with the same convention as the rest of the package: one multiply-add is 2 FLOPs, and the
factorisation counts are the standard ones from Golub & Van Loan, *Matrix Computations* (4th ed., fig. 8.6.1
and sec. 8.3), for an m x n matrix with m >= n:

- ``"svd"``: thin SVD returning U1, S and V (``torch.linalg.svd(full_matrices=False)``), R-SVD count
  ``6 m n^2 + 20 n^3`` with ``m = max(T, D)``, ``n = min(T, D)``.
- ``"gram"``: Gram matrix on the smaller side (``2 T D n``), symmetric eigendecomposition with eigenvectors
  (``9 n^3``, tridiagonalisation + implicit QR), and, when ``D < T``, recovering U = F V S^-1 (``2 T D k``).
- ``"lowrank"``: randomized range finder (Halko et al. 2011, as ``torch.svd_lowrank``) with
  ``l = rank + oversample`` columns and ``niter`` power iterations: ``2 T D l (2 + 2 niter)`` for the
  products with F, Householder QRs ``4 m l^2`` each (``niter + 1`` on T x l, ``niter`` on D x l), the small
  SVD of the l x D matrix ``6 D l^2 + 20 l^3`` and ``U = Q U_B`` (``2 T l^2``).
- ``"auto"``: picks one of the above at run time; counted as ``"svd"``, the most expensive exact solver.
  Pass the solver actually used when it is known.

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


def selection_flops(
    T: int,
    D: int,
    solver: str = "svd",
    rank: int | None = None,
    *,
    oversample: int = 10,
    niter: int = 2,
) -> int:
    """FLOPs of SVD-Prune's selection for one image (see the module docstring for the counts used).

    Args:
        T: tokens in the feature matrix (576 for LLaVA-1.5).
        D: feature width (the vision hidden size, 1024 for CLIP ViT-L).
        solver: ``"svd"``, ``"gram"``, ``"lowrank"`` or ``"auto"`` (counted as ``"svd"``).
        rank: singular vectors used for the leverage scores (``k``, from the variance threshold). ``None``
            means ``min(T, D)`` for the exact solvers and :data:`DEFAULT_LOWRANK_RANK` for ``"lowrank"``.
        oversample: extra random columns of ``"lowrank"``.
        niter: power iterations of ``"lowrank"`` (``torch.svd_lowrank`` default: 2).

    Returns:
        FLOPs (2 per multiply-add) as an int.

    Raises:
        ValueError: for an unknown solver or non-positive sizes.

    Example:
        >>> selection_flops(576, 1024, "svd")  # 6*1024*576**2 + 20*576**3 + 2*576*576
        5861154816
        >>> selection_flops(576, 1024, "gram", rank=32) < selection_flops(576, 1024, "svd", rank=32)
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
    leverage = 2 * T * rank
    if solver in ("svd", "auto"):
        m = max(T, D)
        return 6 * m * n * n + 20 * n**3 + leverage
    if solver == "gram":
        recover_u = 2 * T * D * rank if D < T else 0
        return 2 * T * D * n + 9 * n**3 + recover_u + leverage
    if oversample < 0 or niter < 0:
        raise ValueError(f"oversample and niter must be >= 0, got {oversample=} and {niter=}")
    cols = min(rank + oversample, n)
    products = 2 * T * D * cols * (2 + 2 * niter)
    qrs = 4 * T * cols**2 * (niter + 1) + 4 * D * cols**2 * niter
    small_svd = 6 * D * cols**2 + 20 * cols**3 + 2 * T * cols**2
    return products + qrs + small_svd + leverage
