"""Per-config cost coefficients shared by the counted and the analytic FLOPs paths.

Every component of LLaVA inference is a polynomial in the token counts, so one architecture is summarised by
a handful of integers (FLOPs, 2 per multiply-add):

- vision tower: a constant per image;
- projector: ``p0 + p1 K`` for K kept tokens (``p0`` is 0 for the LLaVA MLP);
- language-model prefill over ``n`` positions, with the LM head on the last position only (as ``generate``
  does with ``logits_to_keep=1``): ``c0 + c1 n + c2 n^2``;
- one decode step (one new position, LM head included) with ``L`` positions already in the KV cache:
  ``d0 + d1 L``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["ComponentCosts", "fit_polynomial", "solve_exact"]


@dataclass(frozen=True)
class ComponentCosts:
    """Cost coefficients of one architecture (see the module docstring).

    Attributes:
        vision: FLOPs of the vision tower for one image.
        projector: ``(p0, p1)``: projector FLOPs for K tokens are ``p0 + p1 * K``.
        prefill: ``(c0, c1, c2)``: prefill FLOPs over n positions are ``c0 + c1 * n + c2 * n**2``.
        decode: ``(d0, d1)``: one decode step with L cached positions costs ``d0 + d1 * L``.

    Example:
        >>> costs = ComponentCosts(vision=10, projector=(0, 2), prefill=(5, 3, 1), decode=(7, 1))
        >>> costs.projector_flops(4), costs.prefill_flops(10), costs.decode_flops(10, 3)
        (8, 135, 35)
    """

    vision: int
    projector: tuple[int, int]
    prefill: tuple[int, int, int]
    decode: tuple[int, int]

    def projector_flops(self, kept: int) -> int:
        """Projector FLOPs for ``kept`` image tokens."""
        p0, p1 = self.projector
        return p0 + p1 * kept

    def prefill_flops(self, positions: int) -> int:
        """Prefill FLOPs over ``positions`` (text + kept image tokens), LM head on the last one."""
        c0, c1, c2 = self.prefill
        return c0 + c1 * positions + c2 * positions * positions

    def decode_flops(self, positions: int, new_tokens: int) -> int:
        """FLOPs of the decode steps after a prefill over ``positions`` that generate ``new_tokens`` in all.

        The prefill's logits give the first new token, so ``new_tokens`` tokens take ``new_tokens - 1``
        decode steps; step ``j`` (1-based) attends over ``positions + j`` keys (``positions + j - 1`` cached).
        """
        steps = max(new_tokens - 1, 0)
        d0, d1 = self.decode
        # sum_{j=1}^{steps} (d0 + d1 * (positions + j - 1))
        return steps * d0 + d1 * (steps * positions + steps * (steps - 1) // 2)


def solve_exact(rows: Sequence[Sequence[int]], values: Sequence[int]) -> tuple[int, ...]:
    """Exact integer solution ``x`` of the square system ``rows @ x == values``.

    Used to turn a few FLOP counts into the exact coefficients of a cost formula.

    Raises:
        ValueError: if the system is not square and regular, or its solution is not integer (counts that
            do not follow the assumed formula, which would be a bug in the counting).

    Example:
        >>> solve_exact([[1, 1], [1, 2]], [5, 7])  # x0 + x1 = 5, x0 + 2 x1 = 7
        (3, 2)
    """
    size = len(rows)
    if len(values) != size or any(len(row) != size for row in rows):
        raise ValueError(f"need a square system, got {len(rows)} rows for {len(values)} values")
    table = [[Fraction(v) for v in row] + [Fraction(y)] for row, y in zip(rows, values, strict=True)]
    for col in range(size):  # Gauss-Jordan elimination over the rationals
        pivot = next((r for r in range(col, size) if table[r][col] != 0), None)
        if pivot is None:
            raise ValueError(f"singular system: {rows}")
        table[col], table[pivot] = table[pivot], table[col]
        table[col] = [v / table[col][col] for v in table[col]]
        for r in range(size):
            if r != col and table[r][col] != 0:
                factor = table[r][col]
                table[r] = [a - factor * b for a, b in zip(table[r], table[col], strict=True)]
    solution = [row[-1] for row in table]
    if any(x.denominator != 1 for x in solution):
        raise ValueError(f"counts {list(values)} do not fit an integer formula: {solution}")
    return tuple(int(x) for x in solution)


def fit_polynomial(xs: Sequence[int], ys: Sequence[int]) -> tuple[int, ...]:
    """Exact integer coefficients (lowest degree first) of the polynomial through ``(xs, ys)``.

    Raises:
        ValueError: for repeated ``xs``, or points on no integer polynomial of degree ``len(xs) - 1``.

    Example:
        >>> fit_polynomial((1, 2, 3), (6, 11, 18))  # 3 + 2x + x^2
        (3, 2, 1)
    """
    if len(set(xs)) != len(xs):
        raise ValueError(f"xs must be distinct, got {xs}")
    return solve_exact([[x**p for p in range(len(xs))] for x in xs], ys)
