"""Image decoding: high bit depth scaled to 8 bits (not clipped to white), transparency on white, other modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptive_svdprune.data.records import load_image, to_rgb

GRADIENT16 = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)


def _grey(img: Image.Image) -> np.ndarray:
    rgb = np.asarray(img)
    assert img.mode == "RGB" and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0].astype(int)


def test_16_bit_png_gradient_stays_a_gradient(tmp_path: Path) -> None:
    path = tmp_path / "g16.png"
    Image.fromarray(GRADIENT16).save(path)
    assert Image.open(path).mode.startswith("I")  # PIL opens it as a 16-bit mode
    grey = _grey(load_image(path))
    expected = np.rint(GRADIENT16 / 257.0).astype(int)
    assert np.abs(grey - expected).max() <= 1
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 200  # not solid white


@pytest.mark.parametrize(
    ("array", "mode", "expected"),
    [
        pytest.param(GRADIENT16.astype(np.int32), "I", np.rint(GRADIENT16 / 257.0), id="I-16bit-values"),
        pytest.param(np.arange(256, dtype=np.int32).reshape(16, 16), "I", np.arange(256).reshape(16, 16),
                     id="I-8bit-values"),
        pytest.param(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16), "F",
                     np.rint(np.linspace(0, 255, 256)).reshape(16, 16), id="F-unit-range"),
        pytest.param(np.linspace(-5, 5, 256, dtype=np.float32).reshape(16, 16), "F",
                     np.rint(np.linspace(0, 255, 256)).reshape(16, 16), id="F-other-range"),
    ],
)
def test_integer_and_float_modes_are_scaled(tmp_path: Path, array: np.ndarray, mode: str,
                                            expected: np.ndarray) -> None:
    path = tmp_path / "img.tiff"
    Image.fromarray(array, mode=None).save(path)
    img = Image.open(path)
    assert img.mode == mode
    assert np.abs(_grey(load_image(path)) - expected).max() <= 1


@pytest.mark.parametrize(
    ("mode", "color"),
    [
        pytest.param("RGBA", (10, 20, 30, 0), id="RGBA-transparent"),
        pytest.param("LA", (10, 0), id="LA-transparent"),
    ],
)
def test_transparent_pixels_become_white(mode: str, color: tuple[int, ...]) -> None:
    img = Image.new(mode, (4, 4), color)
    assert np.asarray(to_rgb(img)).min() == 255


def test_opaque_rgba_keeps_its_colour() -> None:
    assert np.asarray(to_rgb(Image.new("RGBA", (2, 2), (10, 20, 30, 255))))[0, 0].tolist() == [10, 20, 30]


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 200, 0, 0] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)
    img.info["transparency"] = 0
    path = tmp_path / "p.png"
    img.save(path, transparency=0)
    rgb = np.asarray(load_image(path))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[1, 1].tolist() == [200, 0, 0]


@pytest.mark.parametrize(
    ("mode", "color", "expected"),
    [
        pytest.param("CMYK", (0, 255, 255, 0), [255, 0, 0], id="CMYK-red"),
        pytest.param("1", 1, [255, 255, 255], id="bilevel"),
        pytest.param("L", 128, [128, 128, 128], id="L"),
    ],
)
def test_other_modes(mode: str, color: object, expected: list[int]) -> None:
    assert np.asarray(to_rgb(Image.new(mode, (2, 2), color)))[0, 0].tolist() == expected  # type: ignore[arg-type]
