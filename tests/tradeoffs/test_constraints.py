"""Choosing the trial that best meets a deployment constraint."""

from __future__ import annotations

import pytest

from adaptive_svdprune.tradeoffs import ResultSet, TrialResult, select_for_constraint
from tests._trials import make_trials


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_tflops": 1.0}, "t0"),  # best accuracy with tflops <= 1.0
        ({"max_tflops": 10.0}, "t2"),
        ({"max_tflops": 0.5}, "t4"),  # the cap is inclusive
        ({"min_accuracy": 0.6}, "t0"),  # fewest flops with accuracy >= 0.6
        ({"min_accuracy": 0.0}, "t4"),
        ({"min_accuracy": 0.7}, "t2"),
    ],
    ids=["cap-1", "cap-loose", "cap-inclusive", "floor-0.6", "floor-0", "floor-inclusive"],
)
def test_select_for_constraint(trials: list[TrialResult], kwargs: dict[str, float], expected: str) -> None:
    assert select_for_constraint(trials, **kwargs).trial_id == expected
    assert select_for_constraint(ResultSet(trials=trials), **kwargs).trial_id == expected


def test_select_tie_breaks() -> None:
    tied = make_trials([(0.6, 1.0), (0.6, 0.8), (0.7, 2.0), (0.7, 2.0), (0.65, 2.0)])
    assert select_for_constraint(tied, max_tflops=1.0).trial_id == "t1"  # same accuracy: fewer flops
    assert select_for_constraint(tied, min_accuracy=0.62).trial_id == "t2"  # same flops: higher accuracy, first
    assert select_for_constraint(tied, max_tflops=2.0).trial_id == "t2"  # full tie: earlier trial


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_tflops": 0.1}, "no trial has tflops <= 0.1; the cheapest is trial t4 with tflops=0.5, accuracy=0.5"),
        ({"min_accuracy": 0.9}, "no trial has accuracy >= 0.9; the most accurate is trial t2 with accuracy=0.7"),
        ({}, "exactly one of max_tflops and min_accuracy, got max_tflops=None and min_accuracy=None"),
        ({"max_tflops": 1.0, "min_accuracy": 0.5}, "exactly one of"),
    ],
    ids=["cap-infeasible", "floor-infeasible", "neither", "both"],
)
def test_select_errors(trials: list[TrialResult], kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        select_for_constraint(trials, **kwargs)


def test_select_from_no_trials() -> None:
    with pytest.raises(ValueError, match="no successful trials"):
        select_for_constraint([], max_tflops=1.0)
