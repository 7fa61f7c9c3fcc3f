from __future__ import annotations

import pytest
import torch

from adaptive_svdprune.pruning import (
    BaselineConfig,
    SVDPruneConfig,
    available_selectors,
    config_from_dict,
    make_selector,
)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"variance_threshold": 0.0}, ValueError, r"\(0, 1\], got 0.0", id="eps-zero"),
        pytest.param({"variance_threshold": 1.01}, ValueError, "got 1.01", id="eps-above-one"),
        pytest.param({"variance_threshold": float("nan")}, ValueError, "got nan", id="eps-nan"),
        pytest.param({"variance_threshold": "0.9"}, TypeError, "'0.9'", id="eps-str"),
        pytest.param({"budget": 0}, ValueError, "budget must be a positive int, got 0", id="budget-zero"),
        pytest.param({"budget": -3}, ValueError, "got -3", id="budget-negative"),
        pytest.param({"budget": 2.5}, TypeError, "2.5", id="budget-float"),
        pytest.param({"budget": True}, TypeError, "True", id="budget-bool"),
        pytest.param({"min_tokens": 8, "max_tokens": 4}, ValueError, "min_tokens=8", id="min-gt-max"),
        pytest.param({"solver": "qr"}, ValueError, "'qr'", id="solver"),
    ],
)
def test_invalid_config(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SVDPruneConfig(**kwargs)


@pytest.mark.parametrize(
    "config",
    [SVDPruneConfig(), SVDPruneConfig(0.75, budget=32, min_tokens=4, max_tokens=64, solver="gram", center=True),
     BaselineConfig("random", budget=8, seed=7), BaselineConfig("none")],
    ids=["svd-default", "svd-full", "random", "none"],
)
def test_dict_round_trip(config: object) -> None:
    assert config_from_dict(config.to_dict()) == config  # type: ignore[attr-defined]


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown SVDPruneConfig keys \['epsilon'\]"):
        SVDPruneConfig.from_dict({"epsilon": 0.9})
    with pytest.raises(ValueError, match="unknown method 'visionzip'"):
        config_from_dict({"method": "visionzip"})


def test_registry_names_and_dispatch() -> None:
    assert {"svd", "random", "uniform", "l2norm", "cls_attention", "none", "fastv"} <= set(available_selectors())
    F = torch.randn(2, 36, 8)
    assert make_selector("svd", variance_threshold=0.9, budget=5)(F).counts == [5, 5]
    assert make_selector(SVDPruneConfig(budget=3))(F).counts == [3, 3]
    with pytest.raises(ValueError, match="unknown method 'foo'"):
        make_selector("foo", budget=3)


def test_context_requirements_are_checked() -> None:
    with pytest.raises(ValueError, match=r"needs \['cls_attention'\]"):
        make_selector("cls_attention", budget=3)(torch.randn(1, 9, 4))
    with pytest.raises(ValueError, match="needs a budget"):
        BaselineConfig("random", budget=None)
