"""Overlays of LLaVA-NeXT/OneVision (base view and crops panels) and Qwen2(.5)-VL (merged 28 px tokens): cells where
the model's own geometry puts them (transformers' unpadding rule, the processor's patch grid), and via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adaptive_svdprune.assets import draw_demo_image
from adaptive_svdprune.cli import main
from adaptive_svdprune.models.families import load_model, prune_model
from adaptive_svdprune.models.overlay import PANEL_GAP, draw_anyres_panels, draw_merged_tokens
from adaptive_svdprune.models.tiny_next import tiny_next_path
from adaptive_svdprune.models.tiny_qwen import tiny_qwen_vl_path
from adaptive_svdprune.pruning.config import BaselineConfig

PATCH = 14


def _dark(pixel: np.ndarray, original: np.ndarray) -> bool:
    return bool((pixel.astype(int) < original.astype(int) - 20).any())


@pytest.mark.parametrize("size", [(500, 280), (280, 500)], ids=["wide", "tall"])
def test_anyres_panels_follow_the_unpadded_crop_grid(size: tuple[int, int]) -> None:
    from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image

    model, processor = load_model(tiny_next_path())
    image = draw_demo_image("scene").resize(size)
    inputs = processor(images=image, text="USER: <image>\nWhat? ASSISTANT:", return_tensors="pt")
    wrapper = prune_model(model, BaselineConfig("none"))
    features = wrapper.vision_features(inputs["pixel_values"], image_sizes=inputs["image_sizes"])
    wrapper.prepare_inputs(inputs["input_ids"], inputs["attention_mask"], image_features=features)
    layout = wrapper.last_layouts[0]
    cfg = model.config
    side = cfg.vision_config.image_size // PATCH
    gh, gw = get_anyres_image_grid_shape(inputs["image_sizes"][0], cfg.image_grid_pinpoints,
                                         cfg.vision_config.image_size)
    rows, cols = unpad_image(torch.zeros(1, gh * side, gw * side), inputs["image_sizes"][0]).shape[1:]
    # keep base token 0 (top-left of the base view) and the first token of the crops' second row
    positions = layout.token_positions.tolist()
    crop_row1 = next(t for t, r in enumerate(layout.rows.tolist()) if r == 1)
    kept = [positions[0], positions[crop_row1]]
    out = np.asarray(draw_anyres_panels(image, layout, kept, PATCH, outline=None))
    assert out.shape[:2] == (max(side, rows) * PATCH, (side + cols) * PATCH + PANEL_GAP)
    base = np.asarray(image.convert("RGB").resize((side * PATCH, side * PATCH), Image.Resampling.BICUBIC))
    crops = np.asarray(image.convert("RGB").resize((cols * PATCH, rows * PATCH), Image.Resampling.BICUBIC))
    x0 = side * PATCH + PANEL_GAP
    assert (out[:PATCH, :PATCH] == base[:PATCH, :PATCH]).all()  # base token 0 kept
    assert _dark(out[PATCH + 3, 3], base[PATCH + 3, 3])  # base token (1, 0) dropped
    assert (out[PATCH:2 * PATCH, x0:x0 + PATCH] == crops[PATCH:2 * PATCH, :PATCH]).all()  # crop token (1, 0) kept
    assert _dark(out[3, x0 + 3], crops[3, 3])  # crop token (0, 0) dropped


def test_merged_tokens_on_the_processor_grid() -> None:
    """Reference: the processor's image_grid_thw (14 px patches) gives the resized size; one cell per 28 px."""
    _, processor = load_model(tiny_qwen_vl_path())
    image = draw_demo_image("scene").resize((300, 170))
    inputs = processor(images=image, text="<|vision_start|><|image_pad|><|vision_end|>What?", return_tensors="pt")
    t, h, w = inputs["image_grid_thw"][0].tolist()
    cols = w // 2
    out = np.asarray(draw_merged_tokens(image, [cols + 1], (t, h, w), PATCH, 2, outline=None))
    assert out.shape[:2] == (h * PATCH, w * PATCH)
    view = np.asarray(image.convert("RGB").resize((w * PATCH, h * PATCH), Image.Resampling.BICUBIC))
    assert (out[28:56, 28:56] == view[28:56, 28:56]).all()  # merged token (1, 1) kept
    assert _dark(out[5, 5], view[5, 5]) and _dark(out[30, 60], view[30, 60])
    with pytest.raises(ValueError, match="outside the"):
        draw_merged_tokens(image, [h * w], (t, h, w), PATCH, 2)


@pytest.mark.parametrize(("model", "budget"), [("tiny-next", "200"), ("tiny-onevision", "120"),
                                               ("tiny-qwen2.5-vl", "40")])
def test_generate_saves_the_family_overlay(capsys: pytest.CaptureFixture[str], tmp_path: Path, model: str,
                                           budget: str) -> None:
    image = tmp_path / "wide.png"
    draw_demo_image("scene").resize((500, 280)).save(image)
    overlay = tmp_path / "kept.png"
    assert main(["generate", "--model", model, "--image", str(image), "--budget", budget, "--max-new-tokens", "1",
                 "--save-overlay", str(overlay), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overlay"] == str(overlay) and result["kept_tokens"] == int(budget)
    with Image.open(overlay) as picture:
        width, height = picture.size
    if model == "tiny-qwen2.5-vl":
        _, processor = load_model(tiny_qwen_vl_path())
        grid = processor(images=Image.open(image), text="<|vision_start|><|image_pad|><|vision_end|>x",
                         return_tensors="pt")["image_grid_thw"][0].tolist()
        assert (height, width) == (grid[1] * PATCH, grid[2] * PATCH)
    else:
        assert width > 2 * height - 100  # two panels side by side (base view, crops)

