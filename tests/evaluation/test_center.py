"""``center`` (SVD-Prune on mean-centred features) reaches the selector from EvalConfig, ``eval`` and ``generate``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from adaptive_svdprune.cli import build_parser
from adaptive_svdprune.commands import generate
from adaptive_svdprune.commands.evaluate import build_config
from adaptive_svdprune.evaluation import EvalConfig


def test_eval_config_passes_center_to_the_selector_and_its_fingerprint() -> None:
    plain, centred = EvalConfig(wandb=False), EvalConfig(wandb=False, center=True)
    assert plain.selector_config().center is False and centred.selector_config().center is True
    # the run fingerprint holds selector.to_dict(): a resumed run with the other setting is refused
    assert plain.selector_config().to_dict() != centred.selector_config().to_dict()


@pytest.mark.parametrize(("kwargs", "match"), [({"method": "random", "budget": 8}, "center applies to SVD-Prune"),
                                               ({"center": "yes"}, "center must be a bool")])
def test_bad_center_names_the_value(kwargs: dict, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        EvalConfig(wandb=False, **{"center": True, **kwargs})


def test_eval_flag_and_config_key(tmp_path: Path) -> None:
    def cfg(*argv: str) -> EvalConfig:
        return build_config(build_parser().parse_args(["eval", *argv]))

    assert cfg("--config", "tiny-gqa").center is False
    assert cfg("--config", "tiny-gqa", "--center").center is True
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": "tiny", "task": "gqa", "center": True}))
    assert cfg("--config", str(path)).center is True


def _generate_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["generate", *argv])


def test_generate_flag() -> None:
    assert generate.build_config(_generate_args("--budget", "16", "--center")).center is True
    assert generate.build_config(_generate_args("--budget", "16")).center is False
    with pytest.raises(ValueError, match="--center applies to SVD-Prune only"):
        generate.build_config(_generate_args("--method", "random", "--budget", "16", "--center"))
