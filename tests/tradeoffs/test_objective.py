"""ObjectiveConfig: validation, the two formulas, and the guarantees the tuner relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_svdprune.tradeoffs.objective import ObjectiveConfig

unit = st.floats(0.0, 1.0)
flops = st.floats(0.0, 100.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "pareto", "reference_tflops": 1.0}, ValueError, "mode must be one of"),
        ({"reference_tflops": None}, ValueError, "needs reference_tflops"),
        ({"mode": "constrained"}, ValueError, "needs max_tflops"),
        ({"reference_tflops": 0.0}, ValueError, "reference_tflops must be finite and > 0, got 0.0"),
        ({"reference_tflops": 1.0, "lam": -0.1}, ValueError, "lam must be finite and >= 0, got -0.1"),
        ({"reference_tflops": 1.0, "lam": math.inf}, ValueError, "lam must be finite"),
        ({"mode": "constrained", "max_tflops": 1.0, "penalty": 0.0}, ValueError, "penalty must be finite and > 0"),
        ({"mode": "constrained", "max_tflops": -2.0}, ValueError, "max_tflops must be finite and > 0, got -2.0"),
        ({"reference_tflops": "4"}, TypeError, "reference_tflops must be a number, got '4'"),
    ],
    ids=[
        "mode",
        "no-reference",
        "no-cap",
        "zero-reference",
        "negative-lam",
        "inf-lam",
        "zero-penalty",
        "negative-cap",
        "string-reference",
    ],
)
def test_invalid_config(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ObjectiveConfig(**kwargs)


@pytest.mark.parametrize(
    ("accuracy", "tflops", "match"),
    [
        (1.5, 1.0, "accuracy must be a number in \\[0, 1\\], got 1.5"),
        (0.5, -1.0, "tflops must be finite and >= 0"),
        (math.nan, 1.0, "accuracy"),
        (0.5, math.nan, "tflops"),
    ],
    ids=["accuracy>1", "negative-flops", "nan-accuracy", "nan-flops"],
)
def test_invalid_scores(accuracy: float, tflops: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ObjectiveConfig(reference_tflops=1.0).score(accuracy, tflops)


@given(accuracy=unit, tflops=flops, lam=st.floats(0.0, 5.0), ref=st.floats(0.1, 50.0))
def test_scalarized_formula(accuracy: float, tflops: float, lam: float, ref: float) -> None:
    cfg = ObjectiveConfig("scalarized", lam=lam, reference_tflops=ref)
    assert cfg.score(accuracy, tflops) == pytest.approx(accuracy - lam * tflops / ref)


def test_scalarized_unpruned_costs_lam() -> None:
    cfg = ObjectiveConfig(lam=0.3, reference_tflops=8.0)
    assert cfg.score(0.7, 8.0) == pytest.approx(0.4)
    assert cfg.score(0.7, 0.0) == 0.7


@given(a_ok=unit, f_ok=st.floats(0.0, 2.0), a_bad=unit, excess=st.floats(1e-9, 50.0), penalty=st.floats(1e-3, 10))
def test_constrained_infeasible_always_worse(
    a_ok: float, f_ok: float, a_bad: float, excess: float, penalty: float
) -> None:
    cfg = ObjectiveConfig("constrained", max_tflops=2.0, penalty=penalty)
    assert cfg.score(a_ok, f_ok) == a_ok
    assert cfg.score(a_bad, 2.0 + excess) < cfg.score(a_ok, f_ok)


@given(accuracy=unit, f1=st.floats(2.001, 20.0), f2=st.floats(2.001, 20.0))
def test_constrained_infeasible_slopes_back_to_cap(accuracy: float, f1: float, f2: float) -> None:
    cfg = ObjectiveConfig("constrained", max_tflops=2.0, penalty=0.5)
    lo, hi = sorted((f1, f2))
    assert cfg.score(accuracy, lo) >= cfg.score(accuracy, hi)


def test_constrained_formula_exact() -> None:
    cfg = ObjectiveConfig("constrained", max_tflops=1.0, penalty=2.0)
    assert cfg.score(0.8, 1.0) == 0.8  # the cap itself is feasible
    assert cfg.score(0.8, 1.5) == pytest.approx(0.8 - 2.0 * 0.5 - 1.0)


def test_final_metrics_for_nni() -> None:
    cfg = ObjectiveConfig(lam=1.0, reference_tflops=4.0)
    metrics = cfg.final_metrics(0.6, 2.0, 100, latency_ms=3)
    expected = {"default": 0.1, "accuracy": 0.6, "tflops": 2.0, "mean_kept_tokens": 100.0, "latency_ms": 3.0}
    assert metrics == pytest.approx(expected)
    assert all(isinstance(v, float) for v in metrics.values())
    with pytest.raises(ValueError, match="must not override \\['default'\\]"):
        cfg.final_metrics(0.6, 2.0, 100, default=1.0)


def test_dict_round_trip() -> None:
    cfg = ObjectiveConfig("constrained", max_tflops=1.2, penalty=3.0)
    assert ObjectiveConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown ObjectiveConfig keys \\['lambda'\\]"):
        ObjectiveConfig.from_dict({"lambda": 0.5, "reference_tflops": 1.0})
