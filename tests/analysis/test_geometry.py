"""Placing kept positions in the image: layouts of every family against independent references (the stock
model's unpadding rule, the merged grid's row-major order) and the relative-coordinate keep counter vs NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from adaptive_svdprune.analysis import KeepCounter, PatchGrid
from adaptive_svdprune.analysis.attention import AttentionStats
from adaptive_svdprune.analysis.geometry import image_layout, merged_layout, patch_layout
from adaptive_svdprune.assets import draw_demo_image
from adaptive_svdprune.models.families import load_model, prune_model
from adaptive_svdprune.models.tiny_next import tiny_next_path
from adaptive_svdprune.pruning.config import BaselineConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def next_model() -> tuple[Any, Any]:
    return load_model(tiny_next_path())


def test_patch_layout_with_and_without_cls() -> None:
    plain = patch_layout(6, rows=2, cols=3)
    assert plain.view.tolist() == [0] * 6 and plain.patch.tolist() == list(range(6))
    assert plain.row.tolist() == [0.25] * 3 + [0.75] * 3
    assert plain.col == pytest.approx(np.tile([1 / 6, 0.5, 5 / 6], 2))
    with pytest.raises(ValueError, match="not the 2x3 grid"):
        patch_layout(8, rows=2, cols=3)


def test_merged_layout_is_row_major() -> None:
    layout = merged_layout([1, 6, 4], merge_size=2)  # 3 x 2 merged tokens
    assert layout.length == 6 and layout.view_names == ("image",)
    assert layout.row == pytest.approx(np.repeat([1 / 6, 0.5, 5 / 6], 2))
    assert layout.col == pytest.approx(np.tile([0.25, 0.75], 3))


@pytest.mark.parametrize("size", [(500, 280), (280, 500), (336, 336)], ids=["wide", "tall", "square"])
def test_anyres_crops_cover_the_unpadded_grid(next_model: tuple[Any, Any], size: tuple[int, int]) -> None:
    """Reference: transformers' own grid shape and unpadding rule give the crop grid the language model reads."""
    from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image

    model, processor = next_model
    image = draw_demo_image("scene").resize(size)
    inputs = processor(images=image, text="USER: <image>\nWhat? ASSISTANT:", return_tensors="pt")
    wrapper = prune_model(model, BaselineConfig("none"))
    features = wrapper.vision_features(inputs["pixel_values"], image_sizes=inputs["image_sizes"])
    wrapper.prepare_inputs(inputs["input_ids"], inputs["attention_mask"], image_features=features)
    layout = image_layout(wrapper, features)

    cfg = model.config
    side = cfg.vision_config.image_size // cfg.vision_config.patch_size
    gh, gw = get_anyres_image_grid_shape(inputs["image_sizes"][0], cfg.image_grid_pinpoints,
                                         cfg.vision_config.image_size)
    rows, cols = unpad_image(torch.zeros(1, gh * side, gw * side), inputs["image_sizes"][0]).shape[1:]
    base = np.flatnonzero(layout.view == 0)
    crops = np.flatnonzero(layout.view == 1)
    assert base.size == side * side and crops.size == rows * cols
    assert (layout.view == -1).sum() == rows  # one newline per crop-grid row
    k = np.arange(rows * cols)
    assert layout.row[crops] == pytest.approx((k // cols + 0.5) / rows)
    assert layout.col[crops] == pytest.approx((k % cols + 0.5) / cols)
    assert layout.row[base] == pytest.approx((np.arange(side * side) // side + 0.5) / side)


def test_relative_counter_against_numpy() -> None:
    rng = np.random.default_rng(0)
    grid = PatchGrid(4, 5)
    counter = KeepCounter(grid)
    kept_all, avail_all = [], []
    for _ in range(6):
        n = int(rng.integers(5, 40))
        rows, cols = rng.random(n), rng.random(n)
        keep = rng.random(n) < 0.3
        counter.update_relative(rows[keep], cols[keep], rows, cols, positions=int(keep.sum()) + 1)
        kept_all.append((rows[keep], cols[keep]))
        avail_all.append((rows, cols))
    s = counter.summary()
    kr = np.concatenate([r for r, _ in kept_all])
    kc = np.concatenate([c for _, c in kept_all])
    heat, _, _ = np.histogram2d(kr, kc, bins=[np.linspace(0, 1, 5), np.linspace(0, 1, 6)])
    avail, _, _ = np.histogram2d(np.concatenate([r for r, _ in avail_all]), np.concatenate([c for _, c in avail_all]),
                                 bins=[np.linspace(0, 1, 5), np.linspace(0, 1, 6)])
    assert np.asarray(s["heatmap"]) == pytest.approx(heat)
    rate = np.asarray([[np.nan if v is None else v for v in row] for row in s["keep_rate"]], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert rate == pytest.approx(np.where(avail > 0, heat / avail, np.nan), nan_ok=True)
    assert s["mean_row_relative"] == pytest.approx(kr.mean()) and s["mean_col_relative"] == pytest.approx(kc.mean())
    assert s["mean_row"] == pytest.approx(kr.mean() * 4 - 0.5)
    assert s["kept_positions_total"] == kr.size + 6
    with pytest.raises(ValueError, match=r"relative coordinates in \[0, 1\)"):
        counter.update_relative(np.array([1.0]), np.array([0.5]), np.array([1.0]), np.array([0.5]))


def test_attention_stats_bin_relative_places() -> None:
    """Two image positions in one cell add up; a newline (NaN place) is left out of the scores."""
    attn = torch.zeros(1, 5, 5)
    attn[0, 4] = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])  # last query; image span = positions 1..3
    stats = AttentionStats(grid_cols=2, score_layer=0, grid_rows=2)
    places = (np.array([0.1, 0.2, np.nan]), np.array([0.1, 0.3, np.nan]))
    stats.update([attn], (1, 3), torch.ones(5), places)
    last = stats.summary()["position_scores"]["last_token"]
    assert last["scores"] == pytest.approx([0.5, 0.0, 0.0, 0.0])
    assert last["mean_row"] == pytest.approx((0.2 * (0.1 * 2 - 0.5) + 0.3 * (0.2 * 2 - 0.5)) / 0.5)

