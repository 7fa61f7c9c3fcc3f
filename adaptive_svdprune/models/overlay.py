"""Draw which image patches a selection kept: the image as the model saw it, dropped patches shaded.

Example:
    >>> from PIL import Image
    >>> img = Image.new("RGB", (40, 20), "white")
    >>> out = draw_kept_patches(img, [0, 3], crop=(14, 14), patch_size=7)
    >>> out.size, out.getpixel((1, 1)), out.getpixel((8, 1))
    ((14, 14), (255, 255, 255), (89, 89, 89))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from PIL import Image, ImageDraw

__all__ = ["draw_kept_patches", "model_view", "processor_geometry"]


def model_view(image: Image.Image, crop: tuple[int, int], shortest_edge: int | None = None) -> Image.Image:
    """Resize and centre-crop ``image`` the way a CLIP image processor does, to ``crop = (height, width)``.

    With ``shortest_edge`` the shorter side is first resized to it (aspect ratio kept), then the centre is
    cropped; without it the image is resized straight to ``crop``.
    """
    image = image.convert("RGB")
    height, width = crop
    if shortest_edge is None:
        return image.resize((width, height), Image.Resampling.BICUBIC)
    short, long = sorted(image.size)
    new_long = int(shortest_edge * long / short)  # truncated, as transformers' get_resize_output_image_size
    w, h = (shortest_edge, new_long) if image.width <= image.height else (new_long, shortest_edge)
    image = image.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - width) // 2, (h - height) // 2
    return image.crop((left, top, left + width, top + height))


def draw_kept_patches(
    image: Image.Image,
    kept: Iterable[int],
    crop: tuple[int, int],
    patch_size: int,
    shortest_edge: int | None = None,
    shade: float = 0.65,
    outline: tuple[int, int, int] | None = (255, 200, 0),
) -> Image.Image:
    """The model's view of ``image`` with every patch not in ``kept`` darkened.

    Args:
        image: the original image.
        kept: kept token indices in row-major patch order (CLS already excluded).
        crop: ``(height, width)`` the processor crops to (e.g. ``(336, 336)``).
        patch_size: vision patch size (e.g. 14), giving a ``(height // p) x (width // p)`` grid.
        shortest_edge: the processor's resize target, see :func:`model_view`.
        shade: how much a dropped patch is darkened, in ``[0, 1]``.
        outline: colour of the kept patches' outline, or ``None``.
    """
    if not 0.0 <= shade <= 1.0:
        raise ValueError(f"shade must be in [0, 1], got {shade}")
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    view = model_view(image, crop, shortest_edge)
    cols, rows = crop[1] // patch_size, crop[0] // patch_size
    kept_set = {int(k) for k in kept}
    bad = sorted(k for k in kept_set if not 0 <= k < rows * cols)
    if bad:
        raise ValueError(f"kept indices {bad[:5]} are outside the {rows}x{cols} patch grid")
    mask = Image.new("L", view.size, 0)  # 255 where a patch is dropped
    draw = ImageDraw.Draw(mask)
    for t in range(rows * cols):
        if t not in kept_set:
            r, c = divmod(t, cols)
            draw.rectangle((c * patch_size, r * patch_size, (c + 1) * patch_size - 1, (r + 1) * patch_size - 1),
                           fill=255)
    dark = Image.blend(view, Image.new("RGB", view.size, "black"), shade)
    out = Image.composite(dark, view, mask)
    if outline is not None and len(kept_set) < rows * cols:
        pen = ImageDraw.Draw(out)
        for t in sorted(kept_set):
            r, c = divmod(t, cols)
            pen.rectangle((c * patch_size, r * patch_size, (c + 1) * patch_size - 1, (r + 1) * patch_size - 1),
                          outline=outline)
    return out


def processor_geometry(image_processor: Any) -> tuple[tuple[int, int], int | None]:
    """``(crop, shortest_edge)`` of a CLIP-style image processor (crop falls back to ``size``)."""
    crop: Mapping[str, int] | None = getattr(image_processor, "crop_size", None)
    size: Mapping[str, int] | None = getattr(image_processor, "size", None)
    if crop and getattr(image_processor, "do_center_crop", True):
        shortest = size.get("shortest_edge") if size else None
        return (int(crop["height"]), int(crop["width"])), (int(shortest) if shortest else None)
    if size and "height" in size:
        return (int(size["height"]), int(size["width"])), None
    raise ValueError(f"cannot read the crop size of {type(image_processor).__name__}")
