"""The kept-patch overlay shows the image exactly as the processor crops it, patch grid aligned."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from adaptive_svdprune.assets import draw_demo_image
from adaptive_svdprune.models.overlay import draw_kept_patches, model_view, processor_geometry


@pytest.mark.parametrize("size", [(500, 360), (300, 420), (336, 336)], ids=["wide", "tall", "square"])
def test_model_view_matches_the_processor_crop(tiny: tuple[Any, Any], size: tuple[int, int]) -> None:
    image_processor = tiny[1].image_processor
    image = draw_demo_image("scene").resize(size)
    crop, shortest = processor_geometry(image_processor)
    view = np.asarray(model_view(image, crop, shortest), dtype=np.float32) / 255
    pixels = image_processor(image, return_tensors="pt")["pixel_values"][0].permute(1, 2, 0).numpy()
    unnormalised = pixels * np.array(image_processor.image_std) + np.array(image_processor.image_mean)
    assert view.shape == unnormalised.shape == (*crop, 3)
    assert np.abs(view - unnormalised).max() < 2 / 255


def test_dropped_patches_are_shaded() -> None:
    image = Image.new("RGB", (28, 28), (200, 100, 50))
    out = np.asarray(draw_kept_patches(image, [1, 2], crop=(28, 28), patch_size=14, outline=None))
    assert (out[:14, 14:] == (200, 100, 50)).all() and (out[14:, :14] == (200, 100, 50)).all()  # kept
    assert (out[:14, :14] < 100).all() and (out[14:, 14:] < 100).all()  # dropped: darkened
    with pytest.raises(ValueError, match="outside the 2x2 patch grid"):
        draw_kept_patches(image, [4], crop=(28, 28), patch_size=14)
    with pytest.raises(ValueError, match="shade must be in"):
        draw_kept_patches(image, [0], crop=(28, 28), patch_size=14, shade=2.0)
