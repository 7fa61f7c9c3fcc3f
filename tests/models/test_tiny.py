"""The offline tiny checkpoint: LLaVA-1.5 geometry, determinism, the build-once cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from adaptive_svdprune.models.tiny import TINY_VERSION, build_tiny_llava, tiny_llava_path


def test_llava_15_geometry(tiny: tuple[Any, Any], images: list) -> None:
    model, processor = tiny
    config, vision = model.config, model.config.vision_config
    assert (vision.image_size, vision.patch_size) == (336, 14)
    assert config.vision_feature_layer == -2 and config.vision_feature_select_strategy == "default"
    assert config.image_seq_length == (vision.image_size // vision.patch_size) ** 2 == 576
    assert processor.image_processor.crop_size == {"height": 336, "width": 336}
    assert processor.image_token_id == config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert processor.tokenizer.pad_token == "<pad>" and config.text_config.vocab_size == len(processor.tokenizer)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == "USER: <image>\nWhat is it? ASSISTANT:"
    inputs = processor(images=images[0], text=prompt, return_tensors="pt")
    assert int((inputs["input_ids"] == config.image_token_id).sum()) == config.image_seq_length
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 336, 336)
    text = processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=True)
    assert text.startswith("USER:") and text.endswith("What is it? ASSISTANT:")


def test_build_is_deterministic_and_cached(tmp_path: Path, tiny_path: Path) -> None:
    path = tiny_llava_path(cache_dir=tmp_path)
    assert path == tmp_path / f"tiny-llava-{TINY_VERSION}-seed0"
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (path / name).read_bytes() == (tiny_path / name).read_bytes(), name
    stamp = (path / "config.json").stat().st_mtime_ns
    assert tiny_llava_path(cache_dir=tmp_path) == path and (path / "config.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no staging folder left behind
    other = build_tiny_llava(tmp_path / "seed1", seed=1)
    weights0, weights1 = load_file(path / "model.safetensors"), load_file(other / "model.safetensors")
    assert weights0.keys() == weights1.keys()
    assert any(not weights0[k].equal(weights1[k]) for k in weights0)
    assert json.loads((other / "config.json").read_text())["model_type"] == "llava"


def test_bad_seed(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="seed must be an int"):
        build_tiny_llava(tmp_path, seed="0")  # type: ignore[arg-type]
