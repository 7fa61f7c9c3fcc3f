"""Small bundled files: demo images (drawn with PIL) and the text the tiny tokenizer is trained on.

The PNG files are committed; :func:`draw_demo_image` re-creates each of them exactly, so they can be regenerated
(``write_demo_images()``) or drawn in memory.

Example:
    >>> sorted(DEMO_IMAGES)
    ['scene', 'shapes', 'stripes']
    >>> demo_image_path("shapes").name
    'shapes.png'
    >>> draw_demo_image("scene").size
    (336, 336)
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = [
    "ASSETS_DIR",
    "DEMO_IMAGES",
    "corpus_lines",
    "demo_image_path",
    "draw_demo_image",
    "write_demo_images",
]

ASSETS_DIR: Path = Path(__file__).resolve().parent

#: Demo image name -> one-line description (the picture's content, for prompts and docs).
DEMO_IMAGES: dict[str, str] = {
    "shapes": "a red circle, a blue square and a yellow triangle on a white background",
    "scene": "a house with a red roof on green grass under a blue sky with a yellow sun",
    "stripes": "diagonal black and white stripes with a small green dot",
}


def demo_image_path(name: str = "shapes") -> Path:
    """Path of the bundled demo image ``name`` (one of :data:`DEMO_IMAGES`)."""
    if name not in DEMO_IMAGES:
        raise ValueError(f"unknown demo image {name!r}; known: {sorted(DEMO_IMAGES)}")
    return ASSETS_DIR / f"{name}.png"


def draw_demo_image(name: str = "shapes", size: int = 336) -> Image.Image:
    """Draw the demo image ``name`` as an RGB ``size x size`` PIL image (deterministic)."""
    if name not in DEMO_IMAGES:
        raise ValueError(f"unknown demo image {name!r}; known: {sorted(DEMO_IMAGES)}")
    s = size / 336  # drawing coordinates are given for 336 px
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (x0 * s, y0 * s, x1 * s, y1 * s)

    if name == "shapes":
        draw.ellipse(box(30, 40, 150, 160), fill=(220, 30, 40))
        draw.rectangle(box(190, 60, 300, 170), fill=(30, 60, 200))
        draw.polygon([(90 * s, 200 * s), (30 * s, 300 * s), (150 * s, 300 * s)], fill=(240, 200, 20))
    elif name == "scene":
        draw.rectangle(box(0, 0, 336, 230), fill=(120, 180, 240))
        draw.rectangle(box(0, 230, 336, 336), fill=(60, 160, 60))
        draw.ellipse(box(250, 25, 310, 85), fill=(250, 220, 40))
        draw.rectangle(box(90, 160, 210, 260), fill=(200, 170, 120))
        draw.polygon([(80 * s, 160 * s), (150 * s, 100 * s), (220 * s, 160 * s)], fill=(180, 30, 30))
        draw.rectangle(box(135, 205, 165, 260), fill=(90, 60, 30))
    else:  # stripes
        for k in range(-336, 336, 48):
            draw.polygon([(k * s, 0), ((k + 24) * s, 0), ((k + 360) * s, 336 * s), ((k + 336) * s, 336 * s)],
                         fill="black")
        draw.ellipse(box(150, 150, 190, 190), fill=(20, 200, 60))
    return img


def corpus_lines() -> list[str]:
    """Lines of the small English text the tiny model's BPE tokenizer is trained on."""
    data = json.loads((ASSETS_DIR / "tiny_corpus.json").read_text(encoding="utf-8"))
    return [str(line) for line in data["lines"]]


def write_demo_images(directory: str | Path = ASSETS_DIR) -> list[Path]:
    """Write every demo image as ``<name>.png`` into ``directory`` (this is how the bundled files were made)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DEMO_IMAGES:
        path = directory / f"{name}.png"
        draw_demo_image(name).save(path, optimize=True)
        paths.append(path)
    return paths
