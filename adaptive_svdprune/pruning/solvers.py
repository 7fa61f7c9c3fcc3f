"""Ways to get the leading left singular subspace of a batch of feature matrices.

All solvers return ``(basis, sq_singular)``: ``basis`` ``(N, T, r)`` with orthonormal columns (zero columns for
zero singular values) and ``sq_singular`` ``(N, r)`` the matching squared singular values, descending.

* ``svd``: exact thin SVD (LAPACK / cuSOLVER). The reference.
* ``gram``: eigendecomposition of the smaller Gram matrix (``F F^T`` when ``T <= D``, else ``F^T F`` and
  ``U = F V / s``). One matmul plus a small symmetric eigensolver; on a GPU the matmul runs on the matrix units.
  Squaring the matrix squares its condition number: singular values below ~``1e-3 * s_max`` lose accuracy in
  float32, which does not affect leverage over a subspace that explains most of the variance.
* ``lowrank``: randomized range finder (Halko, Martinsson and Tropp, 2011) with oversampling ``p=8`` and three power
  iterations, grown (16, 32, 64, ... columns) until the captured share of ``||F||_F^2`` (known exactly without any
  decomposition) passes epsilon; once the sketch would exceed a quarter of the range (a flat spectrum) it falls back
  to the exact Gram route. Singular values it returns are never above the true ones, so the rank it finds is never
  below the exact rank; with power iterations the error on a component is of order ``(s_{r+p+1} / s_i)^(2q+1)``, and
  on spectra that decay (as vision features do) the kept tokens match the exact SVD's. Seeded: the same input gives
  the same selection.
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
    U, S, _ = torch.linalg.svd(F, full_matrices=False)
    return U, S.square()


def gram_subspace(F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    T, D = F.shape[-2], F.shape[-1]
    if T <= D:
        evals, evecs = torch.linalg.eigh(F @ F.transpose(-1, -2))
        evals, basis = evals.flip(-1).clamp(min=0), evecs.flip(-1)
    else:
        evals, evecs = torch.linalg.eigh(F.transpose(-1, -2) @ F)
        evals, V = evals.flip(-1).clamp(min=0), evecs.flip(-1)
        s = evals.sqrt()
        inv = torch.where(s > s[..., :1] * 1e-6, 1.0 / s.clamp(min=1e-30), torch.zeros_like(s))
        basis = (F @ V) * inv.unsqueeze(-2)
    # eigenvectors of numerically-zero eigenvalues carry no variance: zero them so leverage ignores them
    basis = basis * (evals > evals[..., :1] * 1e-12).unsqueeze(-2).to(basis.dtype)
    return basis, evals


def _orthonormal(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y, mode="reduced").Q


def lowrank_subspace(
    F: torch.Tensor, variance_threshold: float, total: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    T, D = F.shape[-2], F.shape[-1]
    full = min(T, D)
    generator = torch.Generator(device=F.device).manual_seed(seed)
    target = variance_threshold * total * (1 - 1e-6)
    r = min(_START_RANK, full)
    while True:
        width = min(r + _OVERSAMPLE, full)
        if 4 * width > full:  # a flat spectrum: sketching costs more than the exact route and is less accurate
            return gram_subspace(F)
        omega = torch.randn((*F.shape[:-2], D, width), generator=generator, device=F.device, dtype=F.dtype)
        Q = _orthonormal(F @ omega)
        for _ in range(_POWER_ITERS):
            Q = _orthonormal(F @ _orthonormal(F.transpose(-1, -2) @ Q))
        U_small, S, _ = torch.linalg.svd(Q.transpose(-1, -2) @ F, full_matrices=False)
        sq = S.square()
        if bool((sq[..., :r].sum(-1) >= target).all()):
            return Q @ U_small, sq
        r *= 2


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
