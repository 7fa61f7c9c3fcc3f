"""Pre-projector features and CLS attention against the stock model's own computations."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from adaptive_svdprune.models.vision import VisionFeatures, extract_vision_features, feature_layers


@pytest.fixture(scope="module")
def pixel_values(tiny: tuple[Any, Any], images: list) -> torch.Tensor:
    return tiny[1].image_processor(images[:2], return_tensors="pt")["pixel_values"]


def test_features_are_what_the_projector_receives(tiny: tuple[Any, Any], pixel_values: torch.Tensor) -> None:
    model = tiny[0]
    vf = extract_vision_features(model, pixel_values)
    assert vf.features.shape == (2, model.config.image_seq_length, model.config.vision_config.hidden_size)
    assert vf.cls_attention is None
    with torch.no_grad():
        stock = torch.stack(model.model.get_image_features(pixel_values).pooler_output)
        assert torch.equal(model.model.multi_modal_projector(vf.features), stock)


def test_cls_attention_equals_eager_output_attentions(tiny: tuple[Any, Any], pixel_values: torch.Tensor) -> None:
    model = tiny[0]
    vf = extract_vision_features(model, pixel_values, with_cls_attention=True)
    eager = copy.deepcopy(model.model.vision_tower)  # the shared model keeps its attention implementation
    eager.config._attn_implementation = "eager"
    with torch.no_grad():
        attentions = eager(pixel_values, output_attentions=True).attentions
    layer = feature_layers(model)[-1] - 1  # hidden state i is the output of encoder layer i - 1
    expected = attentions[layer][:, :, 0, 1:].float().mean(dim=1)
    assert vf.cls_attention is not None and vf.cls_attention.dtype == torch.float32
    torch.testing.assert_close(vf.cls_attention, expected, atol=1e-6, rtol=1e-5)
    assert model.model.vision_tower.config._attn_implementation != "eager"


def test_list_valued_feature_layer_is_concatenated(tiny: tuple[Any, Any], pixel_values: torch.Tensor) -> None:
    config = copy.deepcopy(tiny[0].config)
    config.vision_feature_layer = [-3, -2]
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    vf = extract_vision_features(model, pixel_values, with_cls_attention=True)
    assert vf.features.shape[-1] == 2 * config.vision_config.hidden_size
    with torch.no_grad():
        stock = torch.stack(model.model.get_image_features(pixel_values).pooler_output)
        assert torch.equal(model.model.multi_modal_projector(vf.features), stock)


def test_vision_features_container() -> None:
    vf = VisionFeatures(torch.randn(3, 5, 2), torch.rand(3, 5))
    assert len(vf[[0, 2]]) == 2 and torch.equal(vf[-1].features, vf.features[2:])
    both = VisionFeatures.cat([vf, vf[1:]])
    assert both.features.shape == (5, 5, 2) and both.cls_attention is not None
    assert VisionFeatures.cat([vf, VisionFeatures(torch.randn(1, 5, 2))]).cls_attention is None
    with pytest.raises(ValueError, match="cls_attention must have shape"):
        VisionFeatures(torch.randn(3, 5, 2), torch.rand(3, 4))
    with pytest.raises(ValueError, match="features must be a"):
        VisionFeatures(torch.randn(5, 2))


def test_bad_pixel_values(tiny: tuple[Any, Any]) -> None:
    with pytest.raises(ValueError, match="pixel_values must be"):
        extract_vision_features(tiny[0], torch.randn(3, 336, 336))


def _siglip_llava(strategy: str) -> Any:
    from transformers import LlamaConfig, LlavaConfig, SiglipVisionConfig

    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                image_size=56, patch_size=14)
    text = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       vocab_size=64)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=63, vision_feature_layer=-1,
                         vision_feature_select_strategy=strategy)
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(config).eval()


@pytest.mark.parametrize("strategy", ["full", "default"], ids=["full", "default"])
def test_cls_attention_is_refused_on_a_tower_without_cls(strategy: str) -> None:
    from adaptive_svdprune.models.llava import prune_llava
    from adaptive_svdprune.pruning.config import BaselineConfig

    model = _siglip_llava(strategy)
    pixels = torch.randn(2, 3, 56, 56)
    match = r"CLS token.*SiglipVisionModel.*'siglip_vision_model'"
    with pytest.raises(ValueError, match=match):
        extract_vision_features(model, pixels, with_cls_attention=True)
    with pytest.raises(ValueError, match=match):
        prune_llava(model, BaselineConfig("cls_attention", budget=2)).vision_features(pixels)
    if strategy == "full":  # the features themselves are fine: all 16 patches, none dropped
        assert extract_vision_features(model, pixels).features.shape == (2, 16, 16)


def test_has_cls_token(tiny: tuple[Any, Any]) -> None:
    from adaptive_svdprune.models.vision import has_cls_token

    assert has_cls_token(tiny[0].model.vision_tower)
    assert not has_cls_token(_siglip_llava("full").model.vision_tower)
