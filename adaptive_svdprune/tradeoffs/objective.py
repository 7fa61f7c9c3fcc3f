"""The single number an NNI tuner maximises: accuracy traded against FLOPs.

NNI 3.0 tuners are single-objective. Each trial reports a dict whose ``"default"`` entry is the objective
(what the tuner sees, with ``optimize_mode: maximize``) next to the raw ``accuracy``, ``tflops`` and
``mean_kept_tokens``; the Pareto front is computed afterwards from the raw values of *all* trials
(:mod:`adaptive_svdprune.tradeoffs.pareto`), so the choice of objective only steers where the tuner samples.

Two modes:

``scalarized``
    ``objective = accuracy - lam * tflops / reference_tflops``. ``reference_tflops`` is the unpruned model's
    TFLOPs per sample, so the FLOPs term is the kept fraction of compute, in ``[0, 1]`` for any pruned run.
    ``lam`` is the accuracy the user would give up to save *all* of the compute: with ``lam = 0.5`` one
    accuracy point (0.01) is worth two percent of the unpruned FLOPs.

``constrained``
    Best accuracy under a FLOPs cap ``max_tflops``::

        objective = accuracy                                        if tflops <= max_tflops
        objective = accuracy - penalty * (tflops / max_tflops - 1) - 1  otherwise

    Accuracy lies in ``[0, 1]``, so an infeasible trial scores below 0 <= any feasible trial (strictly, since
    ``penalty > 0`` and ``tflops > max_tflops``), and among infeasible trials the one closer to the cap scores
    higher, which gives the tuner a slope back into the feasible region.

Example:
    >>> cfg = ObjectiveConfig("scalarized", lam=0.5, reference_tflops=4.0)
    >>> cfg.score(accuracy=0.62, tflops=1.0)
    0.495
    >>> cap = ObjectiveConfig("constrained", max_tflops=1.0)
    >>> cap.score(0.60, 0.9), cap.score(0.99, 1.5) < cap.score(0.0, 1.0)
    (0.6, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["OBJECTIVE_MODES", "ObjectiveConfig", "ObjectiveMode"]

ObjectiveMode = Literal["scalarized", "constrained"]
OBJECTIVE_MODES: tuple[str, ...] = ("scalarized", "constrained")


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """How accuracy and FLOPs are folded into NNI's ``default`` metric.

    Args:
        mode: ``"scalarized"`` (weighted sum) or ``"constrained"`` (accuracy under a FLOPs cap).
        lam: weight of the normalised FLOPs term (scalarized mode), ``>= 0``.
        max_tflops: FLOPs cap in TFLOPs per sample (required in constrained mode).
        reference_tflops: unpruned TFLOPs per sample (required in scalarized mode), the normaliser.
        penalty: slope of the infeasible region per unit of relative excess FLOPs (constrained), ``> 0``.

    Example:
        >>> ObjectiveConfig("constrained")
        Traceback (most recent call last):
        ...
        ValueError: mode='constrained' needs max_tflops (a FLOPs cap in TFLOPs per sample), got None
    """

    mode: ObjectiveMode = "scalarized"
    lam: float = 0.5
    max_tflops: float | None = None
    reference_tflops: float | None = None
    penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in OBJECTIVE_MODES:
            raise ValueError(f"mode must be one of {OBJECTIVE_MODES}, got {self.mode!r}")
        _positive("lam", self.lam, allow_zero=True)
        _positive("penalty", self.penalty)
        if self.mode == "scalarized" and self.reference_tflops is None:
            raise ValueError("mode='scalarized' needs reference_tflops (the unpruned TFLOPs per sample), got None")
        if self.mode == "constrained" and self.max_tflops is None:
            raise ValueError("mode='constrained' needs max_tflops (a FLOPs cap in TFLOPs per sample), got None")
        if self.reference_tflops is not None:
            _positive("reference_tflops", self.reference_tflops)
        if self.max_tflops is not None:
            _positive("max_tflops", self.max_tflops)

    def score(self, accuracy: float, tflops: float) -> float:
        """The objective of one trial (higher is better); see the module docstring for the formulas.

        Args:
            accuracy: task accuracy in ``[0, 1]``.
            tflops: mean TFLOPs per sample, ``>= 0``.

        Example:
            >>> ObjectiveConfig("constrained", max_tflops=2.0, penalty=1.0).score(0.5, 3.0)
            -1.0
        """
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
            raise ValueError(f"accuracy must be a number in [0, 1], got {accuracy!r}")
        _positive("tflops", tflops, allow_zero=True)
        if self.mode == "scalarized":
            assert self.reference_tflops is not None  # checked in __post_init__
            return float(accuracy) - self.lam * float(tflops) / self.reference_tflops
        assert self.max_tflops is not None
        if tflops <= self.max_tflops:
            return float(accuracy)
        return float(accuracy) - self.penalty * (tflops / self.max_tflops - 1.0) - 1.0

    def final_metrics(
        self, accuracy: float, tflops: float, mean_kept_tokens: float, **extra: float
    ) -> dict[str, float]:
        """The dict a trial passes to ``nni.report_final_result``: ``default`` plus the raw values.

        Example:
            >>> ObjectiveConfig(reference_tflops=2.0).final_metrics(0.5, 1.0, 64.0)
            {'default': 0.25, 'accuracy': 0.5, 'tflops': 1.0, 'mean_kept_tokens': 64.0}
        """
        metrics = {
            "default": self.score(accuracy, tflops),
            "accuracy": float(accuracy),
            "tflops": float(tflops),
            "mean_kept_tokens": float(mean_kept_tokens),
        }
        clash = sorted(set(extra) & set(metrics))
        if clash:
            raise ValueError(f"extra metrics must not override {clash}")
        metrics.update({key: float(value) for key, value in extra.items()})
        return metrics

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, for experiment configs and W&B."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectiveConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error.

        Example:
            >>> ObjectiveConfig.from_dict({"mode": "constrained", "max_tflops": 1.2}).max_tflops
            1.2
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ObjectiveConfig keys {unknown}; known: {sorted(known)}")
        return cls(**data)
