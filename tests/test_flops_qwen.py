"""Qwen2(.5)-VL FLOPs: meta-device counts against closed forms, and the bundled 7B config."""

from __future__ import annotations

import pytest

from adaptive_svdprune.flops import bundled_archs, kv_cache_bytes, load_arch_config
from adaptive_svdprune.flops._analytic import _text_coefficients
from adaptive_svdprune.flops._qwen import (
    _text_costs,
    _vision_flops,
    qwen_vl_batch_flops,
    qwen_vl_flops,
    qwen_vl_grid,
)


def _small_config(model_type: str = "qwen2_5_vl") -> object:
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    text = {"hidden_size": 96, "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 500,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 4, 4]}}
    if model_type == "qwen2_vl":
        vision = {"depth": 2, "embed_dim": 48, "hidden_size": 96, "mlp_ratio": 2, "num_heads": 4}
        return Qwen2VLConfig(text_config=text, vision_config=vision)
    vision = {"depth": 3, "hidden_size": 48, "intermediate_size": 80, "num_heads": 4, "out_hidden_size": 96,
              "window_size": 112, "fullatt_block_indexes": [1]}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision)


def _window_lengths(grid: tuple[int, int, int], window: int, merge: int) -> list[int]:
    t, h, w = grid[0], grid[1] // merge, grid[2] // merge
    rows = [min(window, h - i) for i in range(0, h, window)]
    cols = [min(window, w - j) for j in range(0, w, window)]
    return [r * c * merge * merge for _ in range(t) for r in rows for c in cols]


def _closed_form_vision(config: object, grid: tuple[int, int, int]) -> int:
    """Matrix-product FLOPs of the Qwen2.5-VL tower: patch embedding, blocks (full or windowed), merger."""
    v = config.vision_config  # type: ignore[attr-defined]
    d, mlp, merge, patch = v.hidden_size, v.intermediate_size, v.spatial_merge_size, v.patch_size
    n = grid[0] * grid[1] * grid[2]
    total = 2 * n * d * v.in_channels * v.temporal_patch_size * patch * patch
    full = [grid[1] * grid[2]] * grid[0]
    windows = _window_lengths(grid, v.window_size // merge // patch, merge)
    for block in range(v.depth):
        lengths = full if block in v.fullatt_block_indexes else windows
        total += n * (8 * d * d + 6 * d * mlp) + 4 * d * sum(length * length for length in lengths)
    wide = d * merge * merge
    return total + 2 * (n // (merge * merge)) * (wide * wide + wide * v.out_hidden_size)


@pytest.mark.parametrize("grid", [(1, 16, 16), (1, 18, 10), (1, 4, 30)], ids=["2x2-windows", "edge-windows", "thin"])
def test_vision_count_matches_the_closed_form(grid: tuple[int, int, int]) -> None:
    config = _small_config()
    assert _vision_flops(config, grid) == _closed_form_vision(config, grid)


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen2_vl"])
def test_language_model_costs_match_the_decoder_formula(model_type: str) -> None:
    config = _small_config(model_type)
    linear, attention, head = _text_coefficients(config.text_config)  # type: ignore[attr-defined]
    assert _text_costs(config) == ((head, linear, attention), (head + linear + attention, attention))


def test_qwen2_vl_vision_is_counted_without_windows() -> None:
    config = _small_config("qwen2_vl")
    small, large = _vision_flops(config, (1, 8, 8)), _vision_flops(config, (1, 16, 16))
    assert 4 * small < large  # full attention: more than linear in the patch count


def test_bundled_7b_config_and_the_table_sample() -> None:
    assert "qwen2.5-vl-7b" in bundled_archs()
    config = load_arch_config("qwen2.5-vl-7b")
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        3584, 28, 28, 4)
    assert (text.intermediate_size, text.vocab_size, text.rope_parameters["mrope_section"]) == (18944, 152064,
                                                                                                 [16, 24, 24])
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size, vision.window_size) == (32, 1280, 3584, 112)
    assert qwen_vl_grid(config, 1008, 672) == (1, 72, 48)
    full = qwen_vl_flops(config, image_size=(1008, 672))
    pruned = qwen_vl_flops(config, grid_thw=[(1, 72, 48)], tokens=64)
    assert full.tokens == 864 and full.selection == 0 and full.projector == 0
    assert pruned.tokens == 64 and pruned.selection > 0 and pruned.vision == full.vision
    assert 0 < pruned.total < full.total
    assert pruned.kv_cache_bytes == kv_cache_bytes(config, 64 + pruned.prompt_tokens)
    assert kv_cache_bytes(config, 1, "bf16") == 2 * 28 * 4 * 128 * 2
    rows = qwen_vl_batch_flops(config, [[(1, 72, 48)], [(1, 72, 48), (1, 28, 28)]], [[64], [64, 196]], [40, 50], 3)
    assert [r.tokens for r in rows] == [64, 260]
    assert rows[1].vision == full.vision + _vision_flops(config, (1, 28, 28))


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"Qwen2-VL or Qwen2\.5-VL config, got model_type 'llava'"):
        qwen_vl_flops("llava-1.5-7b", image_size=(336, 336))
    config = _small_config()
    with pytest.raises(ValueError, match="exactly one of image_size"):
        qwen_vl_flops(config)
    with pytest.raises(ValueError, match=r"kept tokens must be in \[0, T\]"):
        qwen_vl_flops(config, grid_thw=[(1, 4, 4)], tokens=5)
    with pytest.raises(ValueError, match="multiples of 2"):
        qwen_vl_flops(config, grid_thw=[(1, 3, 4)])


def test_count_flops_and_batch_flops_dispatch_qwen_configs() -> None:
    import torch

    from adaptive_svdprune.flops import batch_flops, count_flops

    config = _small_config()
    assert count_flops(config, 16, image_size=(224, 448)) == qwen_vl_flops(config, image_size=(224, 448), tokens=16)
    assert count_flops(config).tokens == 864  # default 1008 x 672
    grid = torch.tensor([[1, 16, 32], [1, 8, 8]])
    rows = batch_flops(config, [16, 16], [40, 30], [2, 1], image_grid_thw=grid)
    assert rows == qwen_vl_batch_flops(config, [[(1, 16, 32)], [(1, 8, 8)]], [[16], [16]], [40, 30], [2, 1])
    assert rows[1].selection == 0  # 16 of 16 tokens: nothing pruned
    with pytest.raises(ValueError, match="pass image_grid_thw"):
        batch_flops(config, [16], [40], 1)
    with pytest.raises(ValueError, match="counted on the meta device only"):
        count_flops(config, 16, method="analytic")
