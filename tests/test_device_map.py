"""``device_map`` loading needs ``accelerate``: it is a declared dependency and works with the tiny model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_accelerate_is_a_declared_dependency() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"accelerate\b", d) for d in deps), deps


@pytest.mark.parametrize("device_map", ["cpu", "auto", {"": "cpu"}], ids=["cpu", "auto", "dict"])
def test_load_llava_with_device_map(device_map: object) -> None:
    import torch

    from adaptive_svdprune.models.llava import load_llava
    from adaptive_svdprune.models.tiny import tiny_llava_path

    model, processor = load_llava(tiny_llava_path(), device_map=device_map)
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}
    assert processor.tokenizer.padding_side == "left"
