"""Where each language-model position of one image lies in the image, for every model family.

The analysis compares methods across images of different sizes and families, so every image token gets a
place in the *image*: the relative coordinates ``(row, col)`` in ``[0, 1)`` of its centre, plus the view it
comes from. Newlines (anyres) and a kept CLS token (``"full"`` select strategy) have no place: their view is
``-1``.

=====================  ===========================================================================================
family                 views and coordinates
=====================  ===========================================================================================
LLaVA-1.5              one view ``image``: the ``rows x cols`` patch grid of the (centre-cropped) square view;
                       token ``t`` sits at ``((t // cols + 0.5) / rows, (t % cols + 0.5) / cols)`` and keeps its
                       patch index (object files are on this grid)
LLaVA-NeXT/OneVision   ``base``: the base view, the whole image resized to one square view (its patch grid);
                       ``crops``: the crop tokens stitched into the *unpadded* grid the language model reads, row
                       by row (one newline per row), which covers exactly the image's content, so a crop token in
                       row ``r`` of ``R`` and column ``c`` of ``C`` sits at ``((r + 0.5) / R, (c + 0.5) / C)``
Qwen2(.5)-VL           one view ``image``: the merged grid ``h/m x w/m`` of that image (one token per 28 x 28 px of
                       the resized image), row-major
=====================  ===========================================================================================

Example:
    >>> layout = patch_layout(5, rows=2, cols=2)        # CLS first ("full" strategy), then a 2x2 grid
    >>> layout.view.tolist(), layout.row.tolist(), layout.patch.tolist()
    ([-1, 0, 0, 0, 0], [0.0, 0.25, 0.25, 0.75, 0.75], [-1, 0, 1, 2, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ImageLayout", "anyres_layout", "image_layout", "merged_layout", "patch_layout"]


@dataclass(frozen=True)
class ImageLayout:
    """The place of each of one image's ``L`` language-model positions (unpruned), see the module docstring.

    Attributes:
        view: ``(L,)`` index into ``view_names``; ``-1`` for positions with no place (newline, CLS).
        row: ``(L,)`` relative row of the token's centre in ``[0, 1)`` (0 where ``view`` is -1).
        col: ``(L,)`` relative column, likewise.
        patch: ``(L,)`` index on the fixed patch grid (LLaVA-1.5, for object recall), else -1.
        view_names: names of the views.
    """

    view: np.ndarray
    row: np.ndarray
    col: np.ndarray
    patch: np.ndarray
    view_names: tuple[str, ...]

    @property
    def length(self) -> int:
        return int(self.view.size)

    @property
    def tokens(self) -> np.ndarray:
        """Positions that are image tokens (have a place)."""
        return np.flatnonzero(self.view >= 0)


def _centres(index: np.ndarray, size: int) -> np.ndarray:
    return (index + 0.5) / size


def patch_layout(length: int, rows: int, cols: int) -> ImageLayout:
    """One square view of ``rows x cols`` patches (LLaVA-1.5); a CLS token first when ``length = rows * cols + 1``."""
    offset = length - rows * cols
    if offset not in (0, 1):
        raise ValueError(f"the vision tower gives {length} tokens per image, not the {rows}x{cols} grid of its "
                         "config (plus at most a CLS token)")
    t = np.arange(rows * cols)
    view = np.concatenate([np.full(offset, -1), np.zeros(rows * cols, dtype=np.int64)])
    row = np.concatenate([np.zeros(offset), _centres(t // cols, rows)])
    col = np.concatenate([np.zeros(offset), _centres(t % cols, cols)])
    patch = np.concatenate([np.full(offset, -1), t])
    return ImageLayout(view, row, col, patch, ("image",))


def merged_layout(grid_thw: Any, merge_size: int) -> ImageLayout:
    """One Qwen2(.5)-VL image: the ``h/m x w/m`` merged grid of its ``(t, h, w)`` patch grid, row-major per frame."""
    t, h, w = (int(v) for v in grid_thw)
    rows, cols = h // merge_size, w // merge_size
    idx = np.arange(t * rows * cols) % (rows * cols)
    n = idx.size
    return ImageLayout(np.zeros(n, dtype=np.int64), _centres(idx // cols, rows), _centres(idx % cols, cols),
                       np.full(n, -1), ("image",))


def anyres_layout(image: Any) -> ImageLayout:
    """One LLaVA-NeXT/OneVision image from its :class:`~adaptive_svdprune.models.anyres.AnyresImage`.

    Base-view tokens (no newline of their own) form a square grid; every other token is placed by its newline
    row and its rank within that row.
    """
    length = int(image.length)
    views = image.views.cpu().numpy()
    rows = image.rows.cpu().numpy()
    token_positions = image.token_positions.cpu().numpy()
    view = np.full(length, -1)
    row = np.zeros(length)
    col = np.zeros(length)
    base = np.flatnonzero(rows < 0)
    if base.size:
        side = math.isqrt(base.size)
        if side * side != base.size:
            raise ValueError(f"the base view has {base.size} tokens, not a square grid")
        view[token_positions[base]] = 0
        row[token_positions[base]] = _centres(np.arange(base.size) // side, side)
        col[token_positions[base]] = _centres(np.arange(base.size) % side, side)
    gridded = np.flatnonzero(rows >= 0)
    if gridded.size:
        grid_rows = rows[gridded]
        n_rows = int(grid_rows.max()) + 1
        per_row = np.bincount(grid_rows, minlength=n_rows)
        starts = np.concatenate([[0], np.cumsum(per_row)[:-1]])
        rank = np.arange(gridded.size) - starts[grid_rows]  # tokens are in reading order
        width = int(per_row.max())
        # a single-view image (several OneVision images in one prompt) is its grid plus newlines: one view
        view[token_positions[gridded]] = np.where(views[gridded] > 0, 1, 0)
        row[token_positions[gridded]] = _centres(grid_rows, n_rows)
        col[token_positions[gridded]] = _centres(rank, width)
    return ImageLayout(view, row, col, np.full(length, -1), ("base", "crops"))


def image_layout(wrapper: Any, features: Any, index: int = 0) -> ImageLayout:
    """The layout of image ``index`` as ``wrapper`` (from ``prune_model``) hands it to the language model.

    LLaVA-NeXT/OneVision: call ``wrapper.prepare_inputs`` on the image first (its layout is read from
    ``wrapper.last_layouts``).
    """
    from adaptive_svdprune.models.llava_next import PrunedLlavaNext
    from adaptive_svdprune.models.qwen_vl import PrunedQwenVL

    if isinstance(wrapper, PrunedLlavaNext):
        if len(wrapper.last_layouts) <= index:
            raise ValueError("call prepare_inputs on the image before asking for its anyres layout")
        return anyres_layout(wrapper.last_layouts[index])
    if isinstance(wrapper, PrunedQwenVL):
        return merged_layout(features.grid_thw[index], wrapper.merge_size)
    vision = wrapper.model.config.vision_config
    side = int(vision.image_size) // int(vision.patch_size)
    return patch_layout(int(features.features.shape[1]), side, side)
