"""Ways to get the leading left singular subspace of a batch of feature matrices.

All solvers return ``(basis, sq_singular)``: ``basis`` ``(N, T, r)`` with orthonormal columns (zero columns for
zero singular values) and ``sq_singular`` ``(N, r)`` the matching squared singular values, descending. Each
image is decomposed on its own: an image gets the same subspace alone and inside any batch.

* ``svd``: exact thin SVD (LAPACK / cuSOLVER) in float32. The reference.
* ``gram``: eigendecomposition of the smaller Gram matrix (``F F^T`` when ``T <= D``, else ``F^T F`` and
  ``U = F V / s``). Squaring the matrix squares its condition number, so the Gram matrix and its small symmetric
  eigensolve (at most ``min(T, D)`` square: 576 x 576 for LLaVA-1.5) are both computed in float64. A product of
  two float32 numbers is exact in float64, so the Gram matrix of the float32 features is accurate to ~1e-16 of
  ``s_max^2`` and every direction with a singular value above ~1e-6 ``s_max`` comes out at least as accurate as
  the float32 SVD gives it; one dominant direction (a spike 1e2-1e4 times the rest) costs nothing, where the
  former float32 Gram route swapped tokens against a float64 SVD. ``tests/pruning/test_solvers.py`` checks that
  it selects exactly what a float64 NumPy SVD selects on such inputs. Still about 1.5x faster than ``svd`` on
  CPU at 576 x 1024 (one float64 matmul and a 576 x 576 eigensolver instead of a float32 SVD).
* ``lowrank``: randomized range finder (Halko, Martinsson and Tropp, 2011) with oversampling ``p=8`` and three power
  iterations, grown (16, 32, 64, ... columns) until the captured share of ``||F||_F^2`` (known exactly without any
  decomposition) passes epsilon; once the sketch would exceed a quarter of the range (a flat spectrum) it falls back
  to the exact Gram route. Singular values it returns are never above the true ones, so the rank it finds is never
  below the exact rank; with power iterations the error on a component is of order ``(s_{r+p+1} / s_i)^(2q+1)``, and
  on spectra that decay (as vision features do) the kept tokens match the exact SVD's. Deterministic per image:
  every image runs its own sketch from a generator seeded with the fixed seed, so an image gets the same tokens
  alone, inside a batch and at any batch position.
* ``auto``: ``gram`` for LLaVA-sized inputs on CPU and GPU, exact ``svd`` for tiny ones (see
  :func:`resolve_solver`; measured in ``benchmarks/bench_select.py``).
"""

from __future__ import annotations

import torch

__all__ = ["SOLVER_NAMES", "gram_subspace", "lowrank_subspace", "resolve_solver", "svd_subspace", "top_subspace"]

SOLVER_NAMES = ("svd", "gram", "lowrank")
_OVERSAMPLE = 8
_POWER_ITERS = 3
_START_RANK = 16


def resolve_solver(name: str, F: torch.Tensor) -> str:
    """The concrete solver for ``name`` on ``F`` (``(N, T, D)``); ``auto`` picks by device and shape.

    The Gram route wins on both devices once the smaller side exceeds 64 (on CUDA its matmul runs on the
    matrix units; on CPU it was 2.5-4x faster than exact SVD at 576 x 1024 in ``benchmarks/bench_select.py``).
    ``lowrank`` is only faster when epsilon is reached at a small rank, which depends on the features, so it is
    never picked automatically. Tiny matrices use exact SVD.

    Example:
        >>> resolve_solver("auto", torch.empty(1, 576, 1024)), resolve_solver("auto", torch.empty(1, 576, 32))
        ('gram', 'svd')
    """
    if name != "auto":
        if name not in SOLVER_NAMES:
            raise ValueError(f"solver must be one of {('auto', *SOLVER_NAMES)}, got {name!r}")
        return name
    small_side = min(F.shape[-2], F.shape[-1])
    if small_side <= 64:
        return "svd"
    return "gram"


def svd_subspace(F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin SVD of ``F`` (``(N, T, D)``): ``(U, s^2)`` in ``F``'s dtype."""
    U, S, _ = torch.linalg.svd(F, full_matrices=False)
    return U, S.square()


def gram_subspace(F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular subspace of ``F`` (``(N, T, D)``) from the float64 Gram matrix; float64 results.

    Example:
        >>> F = torch.zeros(1, 3, 2); F[0, 0, 0] = 2.0; F[0, 2, 1] = 1.0
        >>> basis, sq = gram_subspace(F)
        >>> sq.tolist(), basis.abs()[0, :, 0].tolist()
        ([[4.0, 1.0]], [1.0, 0.0, 0.0])
    """
    X = F.double()
    T, D = X.shape[-2], X.shape[-1]
    if T <= D:
        evals, evecs = torch.linalg.eigh(X @ X.transpose(-1, -2))
        evals, basis = evals.flip(-1).clamp(min=0), evecs.flip(-1)
    else:
        evals, evecs = torch.linalg.eigh(X.transpose(-1, -2) @ X)
        evals, V = evals.flip(-1).clamp(min=0), evecs.flip(-1)
        s = evals.sqrt()
        inv = torch.where(s > s[..., :1] * 1e-6, 1.0 / s.clamp(min=1e-300), torch.zeros_like(s))
        basis = (X @ V) * inv.unsqueeze(-2)
    # eigenvectors of numerically-zero eigenvalues carry no variance: zero them so leverage ignores them
    basis = basis * (evals > evals[..., :1] * 1e-12).unsqueeze(-2).to(basis.dtype)
    return basis, evals


def _orthonormal(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y, mode="reduced").Q


def _lowrank_one(F: torch.Tensor, variance_threshold: float, total: torch.Tensor, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The randomized range finder on one image ``(T, D)``, its sketch drawn from its own seeded generator."""
    T, D = F.shape
    full = min(T, D)
    generator = torch.Generator(device=F.device).manual_seed(seed)
    target = variance_threshold * total * (1 - 1e-6)
    r = min(_START_RANK, full)
    while True:
        width = min(r + _OVERSAMPLE, full)
        if 4 * width > full:  # a flat spectrum: sketching costs more than the exact route and is less accurate
            basis, sq = gram_subspace(F[None])
            return basis[0], sq[0]
        omega = torch.randn((D, width), generator=generator, device=F.device, dtype=F.dtype)
        Q = _orthonormal(F @ omega)
        for _ in range(_POWER_ITERS):
            Q = _orthonormal(F @ _orthonormal(F.transpose(-1, -2) @ Q))
        U_small, S, _ = torch.linalg.svd(Q.transpose(-1, -2) @ F, full_matrices=False)
        sq = S.square()
        if bool(sq[:r].sum() >= target):
            return Q @ U_small, sq
        r *= 2


def lowrank_subspace(
    F: torch.Tensor, variance_threshold: float, total: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomized leading subspace of each image of ``F`` (``(N, T, D)``), zero-padded to a common width.

    Each image is sketched on its own with a generator seeded by ``seed`` (so its tokens do not depend on the
    batch it is in); the padding columns have zero basis vectors and zero squared singular values, which
    changes neither the rank nor the leverage.
    """
    parts = [_lowrank_one(F[i], variance_threshold, total[i], seed) for i in range(F.shape[0])]
    width = max(int(sq.shape[-1]) for _, sq in parts)
    dtype = torch.float64 if any(b.dtype == torch.float64 for b, _ in parts) else F.dtype
    basis = F.new_zeros((F.shape[0], F.shape[1], width), dtype=dtype)
    sq_singular = F.new_zeros((F.shape[0], width), dtype=dtype)
    for i, (b, sq) in enumerate(parts):
        basis[i, :, : b.shape[-1]] = b.to(dtype)
        sq_singular[i, : sq.shape[-1]] = sq.to(dtype)
    return basis, sq_singular


def top_subspace(
    F: torch.Tensor, variance_threshold: float, total: torch.Tensor, solver: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leading left singular subspace of ``F`` (``(N, T, D)`` float32) with ``solver`` (not ``auto``)."""
    if solver == "svd":
        return svd_subspace(F)
    if solver == "gram":
        return gram_subspace(F)
    if solver == "lowrank":
        return lowrank_subspace(F, variance_threshold, total)
    raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVER_NAMES}")
