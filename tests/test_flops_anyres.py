"""FLOPs of the anyres families: geometry equal to the stock processors', per-view vision cost, CLI table."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from adaptive_svdprune.flops import batch_flops, bundled_archs, count_flops, image_token_count, load_arch_config
from adaptive_svdprune.flops._anyres import anyres_geometry

SIZES = [(336, 336), (280, 500), (600, 260), (1000, 1300), (2000, 300), (168, 900)]


@pytest.mark.parametrize("name", ["tiny-next", "tiny-onevision"])
def test_geometry_matches_the_processor_and_the_model(name: str) -> None:
    from adaptive_svdprune.assets import draw_demo_image
    from adaptive_svdprune.models.families import load_model

    model, processor = load_model(name)
    for height, width in SIZES:
        inputs = processor(images=draw_demo_image("shapes").resize((width, height)), text="<image>x",
                           return_tensors="pt")
        geometry = anyres_geometry(model.config, (height, width))
        assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == geometry.positions
        assert int(inputs["pixel_values"].shape[1]) == geometry.views


def test_llava_next_7b_counts_every_view_and_positions_with_newlines() -> None:
    assert {"llava-v1.6-7b", "llava-onevision-7b"} <= set(bundled_archs())
    config = load_arch_config("llava-v1.6-7b")
    assert type(config).__name__ == "LlavaNextConfig" and image_token_count(config) == 2928
    one_view = count_flops("llava-1.5-7b", 576, selection_solver=None)  # the same CLIP tower and Vicuna
    full = count_flops("llava-v1.6-7b", selection_solver=None)
    assert (full.tokens, full.selection) == (2928, 0) and full.vision == 5 * one_view.vision
    pruned = count_flops("llava-v1.6-7b", 64)
    assert pruned.llm_prefill == one_view.llm_prefill - count_flops("llava-1.5-7b", 576).llm_prefill \
        + count_flops("llava-1.5-7b", 64).llm_prefill
    assert pruned.selection > count_flops("llava-1.5-7b", 64).selection  # an SVD over 2880 tokens, not 576
    small = count_flops("llava-v1.6-7b", image_size=(336, 336), selection_solver=None)
    assert (small.tokens, small.vision) == (1176, 3 * one_view.vision)
    with pytest.raises(ValueError, match="tokens of one image"):
        count_flops("llava-v1.6-7b", 3000)


def test_onevision_7b_and_batches() -> None:
    config = load_arch_config("llava-onevision-7b")
    assert anyres_geometry(config, (672, 672)).positions == 729 + 54 * 55
    assert anyres_geometry(config, (2304, 2304)).tokens < 10 * 729 + 200  # anyres_max_9 down-sampling
    rows = batch_flops("llava-v1.6-7b", [64, 64], [60, 60], 1, image_sizes=[(336, 336), (672, 672)])
    assert rows[0].vision * 5 == rows[1].vision * 3
    with pytest.raises(ValueError, match="pass image_sizes"):
        batch_flops("llava-v1.6-7b", [64], [60], 1)


def test_cli_table_for_llava_next_7b() -> None:
    out = subprocess.run([sys.executable, "-m", "adaptive_svdprune.cli", "flops", "--model", "llava-v1.6-7b",
                          "--tokens", "2880,640,320,160,64", "--json"], capture_output=True, text=True, check=True)
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    assert [r["tokens"] for r in rows] == [2880, 640, 320, 160, 64]
    assert [round(r["reduction_pct"], 1) for r in rows] == [1.6, 75.2, 84.7, 89.4, 92.2]
