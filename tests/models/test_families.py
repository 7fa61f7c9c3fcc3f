"""prune_model / load_model dispatch, the family registry, and the tiny anyres checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from adaptive_svdprune.models import families
from adaptive_svdprune.models.families import load_model, prune_model, register_family, supported_model_classes
from adaptive_svdprune.models.llava import PrunedLlava
from adaptive_svdprune.models.llava_next import PrunedLlavaNext, PrunedLlavaOnevision
from adaptive_svdprune.models.names import MODEL_NAMES, resolve_model_path
from adaptive_svdprune.models.tiny_next import TINY_NEXT_VERSION, build_tiny_anyres, tiny_next_path, tiny_onevision_path
from adaptive_svdprune.pruning.config import SVDPruneConfig

LLAVA_CLASSES = ["LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration",
                 "LlavaOnevisionForConditionalGeneration"]


@pytest.mark.parametrize(("name", "wrapper", "model_type"), [
    ("tiny", PrunedLlava, "llava"),
    ("tiny-next", PrunedLlavaNext, "llava_next"),
    ("tiny-onevision", PrunedLlavaOnevision, "llava_onevision"),
], ids=["llava", "next", "onevision"])
def test_load_model_and_prune_model_pick_the_family(name: str, wrapper: type, model_type: str) -> None:
    model, processor = load_model(name)
    assert model.config.model_type == model_type and not model.training
    assert processor.tokenizer.padding_side == "left"
    pruned = prune_model(model, SVDPruneConfig(budget=8))
    assert type(pruned) is wrapper and pruned.model is model  # type: ignore[attr-defined]


def test_supported_classes_and_clear_errors_for_others(tmp_path: Path) -> None:
    assert set(LLAVA_CLASSES) <= set(supported_model_classes())
    with pytest.raises(TypeError, match=r"prune_model does not support Linear; supported model classes: "
                                        r"LlavaForConditionalGeneration, LlavaNextForConditionalGeneration"):
        prune_model(torch.nn.Linear(2, 2), SVDPruneConfig(budget=8))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match=r"model class GPT2LMHeadModel \(model_type 'gpt2'\) is not supported; "
                                         r"supported model classes: LlavaForConditionalGeneration"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        prune_model(torch.nn.Linear(2, 2), SVDPruneConfig(budget=8), split="rows")  # type: ignore[arg-type]


def test_a_new_family_registers_without_editing_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    class FancyVLForConditionalGeneration(torch.nn.Module):
        pass

    monkeypatch.setattr(families, "_FAMILIES", dict(families._FAMILIES))
    seen: dict[str, Any] = {}

    @register_family("FancyVLForConditionalGeneration")
    def _fancy(model: Any, config: Any, pad_token_id: Any = None, split: Any = "global") -> Any:
        seen.update(model=model, split=split)
        return "wrapped"

    model = FancyVLForConditionalGeneration()
    assert prune_model(model, SVDPruneConfig(budget=4), split="per_view") == "wrapped"
    assert seen == {"model": model, "split": "per_view"}
    assert "FancyVLForConditionalGeneration" in supported_model_classes()


def test_tiny_next_geometry() -> None:
    model, processor = load_model(tiny_next_path())
    config = model.config
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (336, 14)
    assert config.vision_feature_select_strategy == "default" and config.vision_feature_layer == -2
    assert config.image_grid_pinpoints == [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    assert processor.image_processor.image_grid_pinpoints == config.image_grid_pinpoints
    assert processor.image_token_id == config.image_token_id
    from adaptive_svdprune.assets import draw_demo_image

    inputs = processor(images=draw_demo_image("shapes", size=672), text="USER: <image>\nHi ASSISTANT:",
                       return_tensors="pt")
    # 672x672: base view 24x24 + a 2x2 crop grid of 48 rows x 48 tokens, each row closed by a newline
    assert tuple(inputs["pixel_values"].shape) == (1, 5, 3, 336, 336)
    assert int((inputs["input_ids"] == config.image_token_id).sum()) == 576 + 48 * 49 == 2928


def test_tiny_onevision_geometry() -> None:
    model, processor = load_model(tiny_onevision_path())
    config = model.config
    assert type(model.model.vision_tower).__name__ == "SiglipVisionModel"
    assert config.vision_feature_select_strategy == "full" and config.vision_aspect_ratio == "anyres_max_9"
    assert type(processor).__name__ == "ImageOnlyOnevisionProcessor"
    assert processor.num_image_tokens == (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    saved = json.loads((tiny_onevision_path() / "processor_config.json").read_text())
    assert saved["processor_class"] == "LlavaOnevisionProcessor"  # stock class where torchvision imports
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    assert processor.apply_chat_template(messages, add_generation_prompt=True) == \
        "<|im_start|>user <image>\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_names_and_the_build_once_cache(tmp_path: Path) -> None:
    assert {"tiny-next", "tiny-onevision"} <= set(MODEL_NAMES)
    assert resolve_model_path("tiny-next") == str(tiny_next_path())
    assert resolve_model_path("tiny-onevision") == str(tiny_onevision_path())
    path = tiny_next_path(cache_dir=tmp_path)
    assert path == tmp_path / f"tiny-next-{TINY_NEXT_VERSION}-seed0"
    assert (path / "model.safetensors").read_bytes() == (tiny_next_path() / "model.safetensors").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    other = build_tiny_anyres(tmp_path / "seed1", family="next", seed=1)
    w0, w1 = load_file(path / "model.safetensors"), load_file(other / "model.safetensors")
    assert w0.keys() == w1.keys() and any(not w0[k].equal(w1[k]) for k in w0)
    with pytest.raises(ValueError, match="family must be 'next' or 'onevision'"):
        build_tiny_anyres(tmp_path / "x", family="qwen")  # type: ignore[arg-type]


def test_llava_cache_entries_round_trip() -> None:
    model, processor = load_model("tiny")
    pruned = prune_model(model, SVDPruneConfig(budget=8))
    from adaptive_svdprune.assets import draw_demo_image

    inputs = processor(images=[draw_demo_image("shapes")] * 2, text=["USER: <image>\nHi ASSISTANT:"] * 2,
                       return_tensors="pt")
    features = pruned.vision_features(inputs["pixel_values"], cls_attention=True)
    entries = pruned.cache_entries(features)
    assert len(entries) == 2 and set(entries[0]) == {"features", "cls_attention"}
    again = pruned.features_from_cache(entries)
    assert torch.equal(again.features, features.features) and torch.equal(again.cls_attention, features.cls_attention)

