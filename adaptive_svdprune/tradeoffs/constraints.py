"""Choosing one trial of a search for a deployment constraint (the step from a Pareto front to a profile).

Example:
    >>> from adaptive_svdprune.tradeoffs.results import TrialResult
    >>> trials = [TrialResult("a", {"variance_threshold": 0.9, "budget": "adaptive"}, 0.62, 1.4, 90.0),
    ...           TrialResult("b", {"variance_threshold": 0.7, "budget": 64}, 0.58, 1.0, 64.0)]
    >>> select_for_constraint(trials, max_tflops=1.2).trial_id
    'b'
    >>> select_for_constraint(trials, min_accuracy=0.6).trial_id
    'a'
"""

from __future__ import annotations

from collections.abc import Iterable

from adaptive_svdprune.tradeoffs.results import ResultSet, TrialResult

__all__ = ["select_for_constraint"]


def select_for_constraint(
    results: ResultSet | Iterable[TrialResult], max_tflops: float | None = None, min_accuracy: float | None = None
) -> TrialResult:
    """The trial that best meets one deployment constraint.

    * ``max_tflops``: highest accuracy among trials with ``tflops <= max_tflops`` (tie: fewer TFLOPs);
    * ``min_accuracy``: fewest TFLOPs among trials with ``accuracy >= min_accuracy`` (tie: higher accuracy).

    Remaining ties go to the earlier trial. Exactly one constraint must be given; when no trial meets it the
    ``ValueError`` shows the closest trial (the cheapest, or the most accurate).
    """
    trials = list(results.trials) if isinstance(results, ResultSet) else list(results)
    if (max_tflops is None) == (min_accuracy is None):
        raise ValueError(f"give exactly one of max_tflops and min_accuracy, got {max_tflops=} and {min_accuracy=}")
    if not trials:
        raise ValueError("no successful trials to choose from")
    if max_tflops is not None:
        feasible = [t for t in trials if t.tflops <= max_tflops]
        if not feasible:
            c = min(trials, key=lambda t: (t.tflops, -t.accuracy))
            raise ValueError(
                f"no trial has tflops <= {max_tflops}; the cheapest is trial {c.trial_id} with "
                f"tflops={c.tflops:.4g}, accuracy={c.accuracy:.4g}"
            )
        return min(feasible, key=lambda t: (-t.accuracy, t.tflops))
    assert min_accuracy is not None
    feasible = [t for t in trials if t.accuracy >= min_accuracy]
    if not feasible:
        c = max(trials, key=lambda t: (t.accuracy, -t.tflops))
        raise ValueError(
            f"no trial has accuracy >= {min_accuracy}; the most accurate is trial {c.trial_id} with "
            f"accuracy={c.accuracy:.4g}, tflops={c.tflops:.4g}"
        )
    return min(feasible, key=lambda t: (t.tflops, -t.accuracy))
