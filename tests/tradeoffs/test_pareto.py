"""Pareto front: sort-based sweep against a brute-force O(n^2) reference."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_svdprune.tradeoffs.pareto import dominates, pareto_front, pareto_indices
from adaptive_svdprune.tradeoffs.results import TrialResult


def brute_force_front(acc: list[float], cost: list[float]) -> set[int]:
    pts = list(zip(acc, cost, strict=True))
    return {i for i, p in enumerate(pts) if not any(dominates(q, p) for j, q in enumerate(pts) if j != i)}


# few distinct values so that ties and exact duplicates are common
coarse = st.lists(
    st.tuples(st.sampled_from([0.1, 0.2, 0.5, 0.7, 0.9]), st.sampled_from([0.5, 1.0, 1.5, 3.0])), max_size=30
)
fine = st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1e3)), max_size=60)


@pytest.mark.parametrize("points", [coarse, fine], ids=["coarse-with-ties", "continuous"])
def test_matches_brute_force(points: st.SearchStrategy) -> None:
    @given(points)
    def check(pts: list[tuple[float, float]]) -> None:
        acc, cost = [p[0] for p in pts], [p[1] for p in pts]
        front = pareto_indices(acc, cost)
        assert set(front) == brute_force_front(acc, cost)
        assert len(front) == len(set(front))
        # sorted by cost, then input order; accuracy strictly rises between distinct costs
        assert front == sorted(front, key=lambda i: (cost[i], i))
        for a, b in itertools.pairwise(front):
            assert acc[a] <= acc[b]

    check()


def test_identical_points_are_all_kept_in_input_order() -> None:
    assert pareto_indices([0.5, 0.3, 0.5, 0.5], [1.0, 0.5, 1.0, 1.0]) == [1, 0, 2, 3]


@pytest.mark.parametrize(
    ("acc", "cost", "expected"),
    [
        ([0.5, 0.6], [1.0, 1.0], [1]),  # same cost: lower accuracy dominated
        ([0.6, 0.6], [1.0, 2.0], [0]),  # same accuracy: more cost dominated
        ([0.6, 0.7], [1.0, 2.0], [0, 1]),  # a genuine trade-off
        ([], [], []),
        ([0.4], [3.0], [0]),
    ],
    ids=["equal-cost", "equal-accuracy", "trade-off", "empty", "single"],
)
def test_small_cases(acc: list[float], cost: list[float], expected: list[int]) -> None:
    assert pareto_indices(acc, cost) == expected


def test_infinite_cost_is_handled() -> None:
    assert pareto_indices([0.9, 0.5], [math.inf, 1.0]) == [1, 0]


@pytest.mark.parametrize(
    ("acc", "cost", "match"),
    [
        ([0.5, math.nan], [1.0, 1.0], "accuracy\\[1\\]=nan"),
        ([0.5], [math.nan], "tflops\\[0\\]=nan"),
        ([0.5], [1.0, 2.0], "len\\(accuracy\\)=1 and len\\(tflops\\)=2"),
    ],
    ids=["nan-accuracy", "nan-flops", "length-mismatch"],
)
def test_bad_input(acc: list[float], cost: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pareto_indices(acc, cost)


def test_front_of_trials(trials: list[TrialResult]) -> None:
    assert [t.trial_id for t in pareto_front(trials)] == ["t4", "t0", "t2"]
    assert pareto_front([]) == []
