"""The shapes world: seeded 336x336 scenes of coloured shapes and word signs on busy backgrounds.

A scene holds 1-6 objects (:data:`SHAPES` x :data:`COLOURS` x :data:`SIZES`), and a sign scene adds one light
sign with a word from :data:`WORDS`. Objects never overlap (their boxes keep a margin), so every question about
them has one answer. The background is never flat: a two-colour gradient, smooth and fine noise, low-contrast
clutter (faint lines, rings and boxes) and small neutral distractor marks, so most of the 24x24 patches are
background but no two look alike.

Everything is a pure function of ``(seed, index, ...)`` (NumPy ``default_rng`` keyed on all of them) and PIL's
bundled font, so the same call draws the same pixels on every machine with the same Pillow.

A patch (14x14 px, row-major index ``r * 24 + c``) belongs to an object when at least
:data:`PATCH_COVER_MIN_PIXELS` of its 196 pixels are the object's (drawn alone, see :func:`object_mask`).

Example:
    >>> scene = sample_scene(seed=0, index=3, n_objects=2)
    >>> len(scene.objects), render_scene(scene).size
    (2, (336, 336))
    >>> all(0 <= p < GRID * GRID for o in scene.objects for p in o.patches)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "COLOURS",
    "GRID",
    "IMAGE_SIZE",
    "PATCH",
    "PATCH_COVER_MIN_PIXELS",
    "PATCH_LABELS",
    "SHAPES",
    "SIZES",
    "WORDS",
    "Scene",
    "SceneObject",
    "object_mask",
    "patch_classes",
    "render_scene",
    "sample_scene",
]

IMAGE_SIZE, PATCH = 336, 14
GRID = IMAGE_SIZE // PATCH  # 24 patches a side, 576 in all
PATCH_COVER_MIN_PIXELS = 20  # ~10% of a 14x14 patch

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (240, 205, 25),
    "purple": (150, 55, 190),
}
#: Size name -> side of the object's bounding box in pixels (small ~2x2 patches, large ~4x4). Boxes start on the
#: patch grid, so a shape of one size always falls on patches the same way; drawn at any pixel offset, the shapes
#: took a 14-px-patch tower trained for minutes on CPU far too long to tell apart.
SIZES: dict[str, int] = {"small": 24, "medium": 34, "large": 46}
#: Words that signs show (TextVQA-style questions); short, lower case as TextVQA's OCR tokens are.
WORDS: tuple[str, ...] = ("stop", "open", "exit", "sale", "taxi", "hotel", "cafe", "park", "bus", "bank",
                          "zoo", "shop")
SIGN_COLOUR = "white"
#: A sign is a tile board: one capital letter centred in each patch-aligned 14x14 cell of its middle row, with a
#: one-cell margin around the word (so ``len(word) + 2`` by 3 patches). Text placed at any pixel offset stayed
#: unreadable for a 14-px-patch tower trained for minutes on CPU (tools/train_shapes_model.py's probe), and a
#: model that cannot read the sign cannot show what pruning costs on it.
_SIGN_FONT_SIZE = 16  # glyphs of the bundled font at 16 px fit a 14-px cell (at most 12 x 11 px for WORDS)
_MARGIN = 10  # minimum gap between object boxes, px


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    Attributes:
        shape: one of :data:`SHAPES`, or ``"sign"``.
        colour: one of :data:`COLOURS` (``"white"`` for signs).
        size: one of :data:`SIZES` (``"sign"`` for signs).
        bbox: ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive.
        word: the sign's word, None for shapes.
        patches: row-major indices (``r * 24 + c``) of the patches the object covers, ascending.
    """

    shape: str
    colour: str
    size: str
    bbox: tuple[int, int, int, int]
    word: str | None = None
    patches: tuple[int, ...] = ()

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bbox
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def name(self) -> str:
        """How questions refer to the object: ``"red circle"``, ``"sign"``."""
        return "sign" if self.shape == "sign" else f"{self.colour} {self.shape}"

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size, "word": self.word,
                "bbox": list(self.bbox), "patches": list(self.patches)}


@dataclass(frozen=True)
class Scene:
    """A sampled scene: its objects (drawing order) and the parameters of its background."""

    seed: int
    index: int
    objects: tuple[SceneObject, ...]
    background: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def shapes(self) -> tuple[SceneObject, ...]:
        return tuple(o for o in self.objects if o.shape != "sign")

    @property
    def sign(self) -> SceneObject | None:
        return next((o for o in self.objects if o.shape == "sign"), None)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _sign_box(word: str) -> tuple[int, int]:
    return (len(word) + 2) * PATCH, 3 * PATCH


def _place_on_grid(rng: np.random.Generator, w: int, h: int) -> tuple[int, int, int, int]:
    """A box whose corner lies on the patch grid (signs come first, so nothing is taken yet)."""
    x0 = PATCH * int(rng.integers(0, GRID - w // PATCH + 1))
    y0 = PATCH * int(rng.integers(0, GRID - h // PATCH + 1))
    return x0, y0, x0 + w, y0 + h


def _sign_cells(obj: SceneObject) -> list[tuple[int, str]]:
    """``(patch index, letter)`` of each letter of a sign, left to right."""
    assert obj.word is not None
    x0, y0 = obj.bbox[0] // PATCH, obj.bbox[1] // PATCH
    return [((y0 + 1) * GRID + x0 + 1 + i, letter) for i, letter in enumerate(obj.word)]


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject, fill: Any, ink: Any = 0) -> None:
    x0, y0, x1, y1 = obj.bbox
    w = x1 - x0
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(x0 + w / 2, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)], fill=fill)
    elif obj.shape == "cross":
        t = w / 3
        draw.rectangle((x0 + t, y0, x1 - 1 - t, y1 - 1), fill=fill)
        draw.rectangle((x0, y0 + t, x1 - 1, y1 - 1 - t), fill=fill)
    elif obj.shape == "sign":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill, outline=ink, width=2)
        font = _font(_SIGN_FONT_SIZE)
        for patch, letter in _sign_cells(obj):  # one glyph centred in each cell, at whole-pixel offsets
            cx, cy = (patch % GRID) * PATCH, (patch // GRID) * PATCH
            left, top, right, bottom = draw.textbbox((0, 0), letter.upper(), font=font)
            tx = cx + (PATCH - (right - left)) // 2 - left
            ty = cy + (PATCH - (bottom - top)) // 2 - top
            draw.text((tx, ty), letter.upper(), fill=ink, font=font)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")


def object_mask(obj: SceneObject) -> np.ndarray:
    """Boolean ``(336, 336)`` mask of the pixels ``obj`` paints when drawn alone (a sign: its whole board)."""
    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    _draw_object(ImageDraw.Draw(canvas), obj, fill=255, ink=255)
    return np.asarray(canvas) > 0


def _covered_patches(mask: np.ndarray) -> tuple[int, ...]:
    counts = mask.reshape(GRID, PATCH, GRID, PATCH).sum(axis=(1, 3))
    return tuple(int(i) for i in np.flatnonzero(counts.reshape(-1) >= PATCH_COVER_MIN_PIXELS))


def _place(rng: np.random.Generator, w: int, h: int, taken: list[tuple[int, int, int, int]]
           ) -> tuple[int, int, int, int] | None:
    """A free box for a ``w`` x ``h`` shape, its corner on the patch grid (see :data:`SIZES`)."""
    for _ in range(200):
        x0 = PATCH * int(rng.integers(0, (IMAGE_SIZE - w) // PATCH + 1))
        y0 = PATCH * int(rng.integers(0, (IMAGE_SIZE - h) // PATCH + 1))
        box = (x0, y0, x0 + w, y0 + h)
        if all(box[2] + _MARGIN <= b[0] or b[2] + _MARGIN <= box[0] or box[3] + _MARGIN <= b[1]
               or b[3] + _MARGIN <= box[1] for b in taken):
            return box
    return None


def sample_scene(seed: int, index: int, n_objects: int | None = None, *, with_sign: bool = False,
                 max_objects: int = 6, salt: int = 0) -> Scene:
    """Sample scene ``index`` of the stream ``(seed, salt)``; independent of how many scenes are drawn.

    Args:
        seed: the data seed.
        index: the scene's position in the stream.
        n_objects: number of shapes (1-6); None draws it uniformly from ``1..max_objects`` (sign scenes
            ``0..max_objects - 3``).
        with_sign: add one sign with a word from :data:`WORDS`.
        max_objects: upper bound when ``n_objects`` is None.
        salt: separates streams of the same seed (splits, formats).

    Raises:
        ValueError: ``n_objects`` outside ``0..6`` or a bad ``max_objects``.
    """
    if not 1 <= max_objects <= 6:
        raise ValueError(f"max_objects must be in 1..6, got {max_objects}")
    rng = np.random.default_rng([seed, salt, index])
    if n_objects is None:
        lo, hi = (0, max(0, max_objects - 3)) if with_sign else (1, max_objects)
        n_objects = int(rng.integers(lo, hi + 1))
    if not 0 <= n_objects <= 6 or (n_objects == 0 and not with_sign):
        raise ValueError(f"n_objects must be in 1..6 (0..6 with a sign), got {n_objects}")
    taken: list[tuple[int, int, int, int]] = []
    objects: list[SceneObject] = []
    if with_sign:
        word = WORDS[int(rng.integers(len(WORDS)))]
        board = _place_on_grid(rng, *_sign_box(word))
        taken.append(board)
        objects.append(SceneObject("sign", SIGN_COLOUR, "sign", board, word=word))
    for _ in range(n_objects):
        size = list(SIZES)[int(rng.integers(len(SIZES)))]
        side = SIZES[size]
        box = _place(rng, side, side, taken)
        if box is None:  # crowded: try the smallest size once more
            size, side = "small", SIZES["small"]
            box = _place(rng, side, side, taken)
            if box is None:
                continue
        taken.append(box)
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        objects.append(SceneObject(shape, colour, size, box))
    objects = [SceneObject(o.shape, o.colour, o.size, o.bbox, o.word, _covered_patches(object_mask(o)))
               for o in objects]
    return Scene(seed=seed, index=index, objects=tuple(objects), background=_sample_background(rng))


def _sample_background(rng: np.random.Generator) -> dict[str, Any]:
    def muted() -> list[int]:
        grey = rng.uniform(95, 200)
        return [int(np.clip(grey + rng.uniform(-22, 22), 0, 255)) for _ in range(3)]

    clutter = []
    for _ in range(int(rng.integers(4, 10))):
        kind = ["line", "ring", "box"][int(rng.integers(3))]
        pts = [int(v) for v in rng.integers(0, IMAGE_SIZE, 4)]
        clutter.append({"kind": kind, "xy": pts, "delta": int(rng.integers(8, 20)) * int(rng.choice([-1, 1])),
                        "width": int(rng.integers(1, 4))})
    marks = []
    for _ in range(int(rng.integers(2, 7))):
        x, y = (int(v) for v in rng.integers(8, IMAGE_SIZE - 8, 2))
        marks.append({"kind": ["dot", "stroke", "tick"][int(rng.integers(3))], "xy": [x, y],
                      "r": int(rng.integers(2, 6)), "grey": int(rng.integers(30, 90)),
                      "angle": float(rng.uniform(0, math.pi))})
    return {
        "from": muted(), "to": muted(), "angle": float(rng.uniform(0, 2 * math.pi)),
        "smooth_noise_seed": int(rng.integers(2**31)), "clutter": clutter, "marks": marks,
    }


def _render_background(bg: dict[str, Any]) -> Image.Image:
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / (IMAGE_SIZE - 1)
    t = (xx - 0.5) * math.cos(bg["angle"]) + (yy - 0.5) * math.sin(bg["angle"])
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = np.asarray(bg["from"], np.float32) * (1 - t[..., None]) + np.asarray(bg["to"], np.float32) * t[..., None]
    noise_rng = np.random.default_rng(bg["smooth_noise_seed"])
    coarse = Image.fromarray(((noise_rng.standard_normal((12, 12)) * 40 + 128).clip(0, 255)).astype(np.uint8))
    smooth = np.asarray(coarse.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC), np.float32) - 128
    img += smooth[..., None] * 0.3 + noise_rng.normal(0, 4, img.shape).astype(np.float32)
    canvas = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    base = np.asarray(canvas, np.int32)
    for c in bg["clutter"]:
        x0, y0, x1, y1 = c["xy"]
        colour = tuple(int(v) for v in np.clip(base[y0 % IMAGE_SIZE, x0 % IMAGE_SIZE] + c["delta"], 0, 255))
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if c["kind"] == "line":
            draw.line((x0, y0, x1, y1), fill=colour, width=c["width"])
        elif c["kind"] == "ring":
            draw.ellipse(box, outline=colour, width=c["width"])
        else:
            draw.rectangle(box, outline=colour, width=c["width"])
    for m in bg["marks"]:
        x, y = m["xy"]
        r, g = m["r"], m["grey"]
        if m["kind"] == "dot":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(g, g, g))
        else:
            dx, dy = r * 2 * math.cos(m["angle"]), r * 2 * math.sin(m["angle"])
            draw.line((x - dx, y - dy, x + dx, y + dy), fill=(g, g, g), width=2 if m["kind"] == "stroke" else 1)
    return canvas


def render_scene(scene: Scene) -> Image.Image:
    """Draw ``scene`` as a 336x336 RGB image (background first, then the objects in order)."""
    canvas = _render_background(scene.background)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        if obj.shape == "sign":
            _draw_object(draw, obj, fill=(245, 243, 235), ink=(20, 20, 20))
        else:
            _draw_object(draw, obj, fill=COLOURS[obj.colour])
    return canvas


#: Label sets of :func:`patch_classes`, each with its class names (index 0 is always the background).
PATCH_LABELS: dict[str, tuple[str, ...]] = {
    "colour": ("background", *COLOURS, SIGN_COLOUR),
    "shape": ("background", *SHAPES, "sign"),
    "word": ("none", *WORDS),
    "column": ("background", *(f"col{i}" for i in range(6))),
    "centre": ("no", "yes"),
    "letter": ("none", *"abcdefghijklmnopqrstuvwxyz"),
}


def patch_classes(scene: Scene) -> dict[str, np.ndarray]:
    """Per-patch class indices (``(576,)`` int64 arrays) of what each patch shows, one array per label set.

    ``colour``/``shape``/``word`` name the object covering the patch (0 = background); ``column`` its centre's
    sixth of the image width (1-6); ``centre`` marks the one patch holding each object's centre; ``letter`` the
    sign letter whose cell the patch is. Training uses
    them as dense auxiliary targets; the model never sees them.
    """
    out = {name: np.zeros(GRID * GRID, np.int64) for name in PATCH_LABELS}
    for obj in scene.objects:
        idx = np.asarray(obj.patches, np.int64)
        cx, cy = obj.centre
        out["colour"][idx] = PATCH_LABELS["colour"].index(obj.colour)
        out["shape"][idx] = PATCH_LABELS["shape"].index(obj.shape)
        out["word"][idx] = PATCH_LABELS["word"].index(obj.word) if obj.word else 0
        out["column"][idx] = 1 + min(5, int(cx * 6 // IMAGE_SIZE))
        out["centre"][min(GRID - 1, int(cy // PATCH)) * GRID + min(GRID - 1, int(cx // PATCH))] = 1
        if obj.word:
            for patch, letter in _sign_cells(obj):
                out["letter"][patch] = PATCH_LABELS["letter"].index(letter)
    return out
