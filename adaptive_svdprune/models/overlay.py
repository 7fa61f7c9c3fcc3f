"""Draw which image patches a selection kept: the image as the model saw it, dropped patches shaded.

One picture per family (:func:`draw_selection_overlay` picks it from the wrapper of the last call):

* LLaVA-1.5: the processor's square view (resized and centre-cropped), one cell per patch token;
* LLaVA-NeXT / OneVision: two panels side by side. Left, the **base view** (the whole image resized to one square
  view) with its patch grid; right, the **crops**: the image at the resolution of the crop grid the language model
  reads (the best-fit grid of crops with the processor's padding removed again, as the model unpads it), one cell
  per crop token. A crop token is drawn kept when the selection kept it; newlines have no place in the image;
* Qwen2(.5)-VL: the image resized as its processor resizes it (multiples of 28 px), one cell per merged token
  (28 x 28 px).

Example:
    >>> from PIL import Image
    >>> img = Image.new("RGB", (40, 20), "white")
    >>> out = draw_kept_patches(img, [0, 3], crop=(14, 14), patch_size=7)
    >>> out.size, out.getpixel((1, 1)), out.getpixel((8, 1))
    ((14, 14), (255, 255, 255), (89, 89, 89))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

__all__ = ["draw_anyres_panels", "draw_kept_cells", "draw_kept_patches", "draw_merged_tokens",
           "draw_selection_overlay", "model_view", "processor_geometry"]

#: pixels between the anyres panels
PANEL_GAP = 8


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
    return draw_kept_cells(view, {divmod(t, cols) for t in kept_set}, rows, cols, (patch_size, patch_size), shade,
                           outline)


def draw_kept_cells(
    view: Image.Image,
    kept: set[tuple[int, int]],
    rows: int,
    cols: int,
    cell: tuple[int, int],
    shade: float = 0.65,
    outline: tuple[int, int, int] | None = (255, 200, 0),
) -> Image.Image:
    """``view`` with every cell of a ``rows x cols`` grid of ``cell = (height, width)`` px not in ``kept`` darkened.

    Args:
        view: the picture the grid lies on (its top-left corner is cell ``(0, 0)``).
        kept: ``(row, col)`` of the kept cells.
        rows, cols: the grid.
        cell: cell size in pixels.
        shade: how much a dropped cell is darkened, in ``[0, 1]``.
        outline: colour of the kept cells' outline, or ``None``.
    """
    if not 0.0 <= shade <= 1.0:
        raise ValueError(f"shade must be in [0, 1], got {shade}")
    height, width = cell
    mask = Image.new("L", view.size, 0)  # 255 where a cell is dropped
    draw = ImageDraw.Draw(mask)
    for r in range(rows):
        for c in range(cols):
            if (r, c) not in kept:
                draw.rectangle((c * width, r * height, (c + 1) * width - 1, (r + 1) * height - 1), fill=255)
    dark = Image.blend(view, Image.new("RGB", view.size, "black"), shade)
    out = Image.composite(dark, view, mask)
    if outline is not None and len(kept) < rows * cols:
        pen = ImageDraw.Draw(out)
        for r, c in sorted(kept):
            pen.rectangle((c * width, r * height, (c + 1) * width - 1, (r + 1) * height - 1), outline=outline)
    return out


def draw_merged_tokens(image: Image.Image, kept: Iterable[int], grid_thw: Sequence[int], patch_size: int,
                       merge_size: int, **style: Any) -> Image.Image:
    """Qwen2(.5)-VL: the image resized to its ``(t, h, w)`` patch grid, dropped merged tokens shaded.

    Args:
        image: the original image.
        kept: kept merged-token indices (row-major on the ``h/m x w/m`` grid).
        grid_thw: the processor's ``image_grid_thw`` row of the image.
        patch_size: vision patch size (14); ``merge_size``: the merger's side (2), so a cell is 28 px.
        **style: ``shade``/``outline`` of :func:`draw_kept_cells`.
    """
    _, h, w = (int(v) for v in grid_thw)
    rows, cols = h // merge_size, w // merge_size
    view = image.convert("RGB").resize((w * patch_size, h * patch_size), Image.Resampling.BICUBIC)
    kept_set = {int(k) for k in kept}
    bad = sorted(k for k in kept_set if not 0 <= k < rows * cols)
    if bad:
        raise ValueError(f"kept indices {bad[:5]} are outside the {rows}x{cols} merged grid")
    side = patch_size * merge_size
    return draw_kept_cells(view, {divmod(k, cols) for k in kept_set}, rows, cols, (side, side), **style)


def draw_anyres_panels(image: Image.Image, layout: Any, kept_positions: Iterable[int], patch_size: int,
                       **style: Any) -> Image.Image:
    """LLaVA-NeXT/OneVision: base view and crops side by side, dropped tokens shaded (see the module docstring).

    Args:
        image: the original image.
        layout: the image's :class:`~adaptive_svdprune.models.anyres.AnyresImage` (``last_layouts`` of the wrapper).
        kept_positions: kept positions of the image's run (newlines included, as ``last_selection.indices``).
        patch_size: pixels per token side in both panels (the vision patch size).
        **style: ``shade``/``outline`` of :func:`draw_kept_cells`.
    """
    rows = layout.rows.tolist()
    token_at = {int(p): t for t, p in enumerate(layout.token_positions.tolist())}
    kept_tokens = {token_at[int(p)] for p in kept_positions if int(p) in token_at}
    base = [t for t, r in enumerate(rows) if r < 0]
    gridded = [t for t, r in enumerate(rows) if r >= 0]
    panels = []
    if base:
        side = math.isqrt(len(base))
        if side * side != len(base):
            raise ValueError(f"the base view has {len(base)} tokens, not a square grid")
        view = image.convert("RGB").resize((side * patch_size, side * patch_size), Image.Resampling.BICUBIC)
        cells = {divmod(i, side) for i, t in enumerate(base) if t in kept_tokens}
        panels.append(draw_kept_cells(view, cells, side, side, (patch_size, patch_size), **style))
    if gridded:
        grid_rows = [rows[t] for t in gridded]
        first = min(grid_rows)
        rank: dict[int, int] = {}
        cells, width = set(), 0
        for t, r in zip(gridded, grid_rows, strict=True):
            c = rank.get(r, 0)
            rank[r] = c + 1
            width = max(width, c + 1)
            if t in kept_tokens:
                cells.add((r - first, c))
        height = max(grid_rows) - first + 1
        view = image.convert("RGB").resize((width * patch_size, height * patch_size), Image.Resampling.BICUBIC)
        panels.append(draw_kept_cells(view, cells, height, width, (patch_size, patch_size), **style))
    out = Image.new("RGB", (sum(p.width for p in panels) + PANEL_GAP * (len(panels) - 1),
                            max(p.height for p in panels)), "white")
    x = 0
    for panel in panels:
        out.paste(panel, (x, 0))
        x += panel.width + PANEL_GAP
    return out


def draw_selection_overlay(pruned: Any, image: Image.Image, inputs: Mapping[str, Any], processor: Any,
                           **style: Any) -> Image.Image:
    """The overlay of the last call of ``pruned`` (a wrapper from ``prune_model``) on ``image``, its first image.

    Args:
        pruned: the wrapper, after ``generate``/``forward`` on ``inputs``.
        image: the original image.
        inputs: the processor outputs of that call (Qwen: ``image_grid_thw``).
        processor: the model's processor (LLaVA-1.5: its crop geometry).
        **style: ``shade``/``outline`` of :func:`draw_kept_cells`.
    """
    from adaptive_svdprune.models.llava_next import PrunedLlavaNext
    from adaptive_svdprune.models.qwen_vl import PrunedQwenVL

    selection = pruned.last_selection
    if selection is None:
        raise ValueError("the wrapper has no selection yet: call generate or forward first")
    kept = selection.indices[0].tolist()
    config = pruned.model.config
    patch = int(config.vision_config.patch_size)
    if isinstance(pruned, PrunedQwenVL):
        return draw_merged_tokens(image, kept, inputs["image_grid_thw"][0].tolist(), patch, pruned.merge_size,
                                  **style)
    if isinstance(pruned, PrunedLlavaNext):
        return draw_anyres_panels(image, pruned.last_layouts[0], kept, patch, **style)
    crop, shortest = processor_geometry(processor.image_processor)
    if config.vision_feature_select_strategy != "default":  # token 0 is CLS, not a patch
        kept = [i - 1 for i in kept if i > 0]
    return draw_kept_patches(image, kept, crop, patch, shortest_edge=shortest, **style)


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
