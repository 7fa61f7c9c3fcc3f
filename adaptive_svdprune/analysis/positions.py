"""Where a selector keeps tokens on the patch grid: keep counts, mean row and column, profiles, object recall.

A LLaVA-1.5 image enters the language model as ``rows x cols`` patch tokens in row-major order (token ``t`` is
row ``t // cols``, column ``t % cols``). :class:`KeepCounter` accumulates, over a data set, how often each
position is kept, and from that the positional bias of a method: the mean kept row and column (an unbiased
method sits near the grid centre, ``(rows - 1) / 2``), the share of kept tokens per row and per column, and the
**object recall**: the share of the patches covered by objects that the method keeps (from an objects file; a
method that keeps ``K`` of ``T`` tokens at random recalls ``K / T`` on average). Families whose images have no
single patch grid (LLaVA-NeXT crops, Qwen2(.5)-VL) feed it relative positions instead
(:meth:`KeepCounter.update_relative`), binned onto the grid; ``keep_rate`` then compares cells fairly.

Example:
    >>> grid = PatchGrid(rows=4, cols=4)
    >>> counter = KeepCounter(grid)
    >>> counter.update([0, 5, 15], object_patches={5, 6})
    >>> s = counter.summary()
    >>> s["heatmap"][1], s["kept_tokens_total"], s["mean_row"], s["object_recall"]
    ([0, 1, 0, 0], 3, 1.3333333333333333, 0.5)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KeepCounter", "ObjectPatches", "PatchGrid", "load_objects"]

#: image id -> the patch indices of each object in it
ObjectPatches = dict[str, list[frozenset[int]]]


@dataclass(frozen=True)
class PatchGrid:
    """The patch grid of a vision tower: ``rows x cols`` tokens, row-major.

    Example:
        >>> from types import SimpleNamespace
        >>> PatchGrid.from_model_config(SimpleNamespace(vision_config=SimpleNamespace(image_size=336, patch_size=14)))
        PatchGrid(rows=24, cols=24)
    """

    rows: int
    cols: int

    @property
    def tokens(self) -> int:
        return self.rows * self.cols

    @property
    def centre(self) -> tuple[float, float]:
        """Mean row and column of a position drawn uniformly from the grid."""
        return (self.rows - 1) / 2, (self.cols - 1) / 2

    @classmethod
    def from_model_config(cls, config: Any) -> PatchGrid:
        """The grid of a LLaVA config (``vision_config.image_size // vision_config.patch_size`` per side)."""
        vision = getattr(config, "vision_config", config)
        image_size, patch_size = getattr(vision, "image_size", None), getattr(vision, "patch_size", None)
        if not isinstance(image_size, int) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"the model config has no integer image_size/patch_size ({image_size=}, {patch_size=})")
        side = image_size // patch_size
        return cls(side, side)


class KeepCounter:
    """Accumulates one method's kept positions over samples (see the module docstring).

    Two ways in: :meth:`update` with token indices on the grid itself (one view of exactly this patch grid:
    LLaVA-1.5), or :meth:`update_relative` with the relative ``(row, col)`` in ``[0, 1)`` of each kept token
    and of every token the image had, binned onto the grid (LLaVA-NeXT crops, Qwen2(.5)-VL's per-image grids).
    Mean rows and columns are in grid units either way (``relative * rows - 0.5``: a token at the centre of
    cell ``r`` counts ``r``), so the grid's centre means no vertical/horizontal bias.
    """

    def __init__(self, grid: PatchGrid) -> None:
        self.grid = grid
        self.counts = np.zeros(grid.tokens, dtype=np.int64)
        self.available = np.zeros(grid.tokens, dtype=np.int64)
        self.samples = 0
        self.positions = 0
        self.object_patches = 0
        self.object_patches_kept = 0
        self.samples_with_objects = 0
        self._row_sum = 0.0
        self._col_sum = 0.0

    def update(self, kept: Iterable[int], object_patches: Iterable[int] | None = None,
               positions: int | None = None) -> None:
        """Add one sample: its kept token indices and, when known, the union of its objects' patches.

        ``positions``: language-model positions the sample kept, when more than its tokens (default: the tokens).
        """
        idx = np.asarray(list(kept), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.grid.tokens):
            raise ValueError(f"kept indices must be in [0, {self.grid.tokens}), got {idx.min()}..{idx.max()}")
        np.add.at(self.counts, idx, 1)
        self.available += 1
        self._row_sum += float((idx // self.grid.cols).sum())
        self._col_sum += float((idx % self.grid.cols).sum())
        self._add_sample(idx.size if positions is None else positions)
        if object_patches is not None:
            patches = set(object_patches)
            self.samples_with_objects += 1
            self.object_patches += len(patches)
            self.object_patches_kept += len(patches.intersection(idx.tolist()))

    def update_relative(self, kept_rows: np.ndarray, kept_cols: np.ndarray, all_rows: np.ndarray,
                        all_cols: np.ndarray, positions: int | None = None) -> None:
        """Add one sample from relative coordinates in ``[0, 1)`` of the kept tokens and of all its tokens."""
        for name, values in (("kept_rows", kept_rows), ("kept_cols", kept_cols), ("all_rows", all_rows),
                             ("all_cols", all_cols)):
            if np.size(values) and (np.min(values) < 0 or np.max(values) >= 1):
                raise ValueError(f"{name} must be relative coordinates in [0, 1)")
        np.add.at(self.counts, self._bins(kept_rows, kept_cols), 1)
        np.add.at(self.available, self._bins(all_rows, all_cols), 1)
        self._row_sum += float((np.asarray(kept_rows) * self.grid.rows - 0.5).sum())
        self._col_sum += float((np.asarray(kept_cols) * self.grid.cols - 0.5).sum())
        self._add_sample(int(np.size(kept_rows)) if positions is None else positions)

    def _bins(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        r = np.floor(np.asarray(rows, dtype=np.float64) * self.grid.rows).astype(np.int64)
        c = np.floor(np.asarray(cols, dtype=np.float64) * self.grid.cols).astype(np.int64)
        return r * self.grid.cols + c

    def _add_sample(self, positions: int) -> None:
        self.samples += 1
        self.positions += positions

    def summary(self) -> dict[str, Any]:
        """JSON-ready statistics: ``heatmap`` (rows x cols keep counts), keep rates, mean row/col, profiles, recall.

        ``keep_rate``: per cell, kept tokens over the tokens the images had there (``None`` for a cell no
        image token fell into); ``mean_row_relative``/``mean_col_relative``: the mean kept position in ``[0, 1]``
        image coordinates (0.5 = the centre).
        """
        heat = self.counts.reshape(self.grid.rows, self.grid.cols)
        total = int(heat.sum())
        row_totals, col_totals = heat.sum(axis=1), heat.sum(axis=0)
        mean_row = self._row_sum / total if total else None
        mean_col = self._col_sum / total if total else None
        recall = self.object_patches_kept / self.object_patches if self.object_patches else None
        available = self.available.reshape(self.grid.rows, self.grid.cols)
        rate = [[float(k / a) if a else None for k, a in zip(kr, ar, strict=True)]
                for kr, ar in zip(heat.tolist(), available.tolist(), strict=True)]
        return {
            "samples": self.samples,
            "kept_tokens_total": total,
            "kept_tokens_mean": total / self.samples if self.samples else None,
            "kept_positions_total": self.positions,
            "heatmap": heat.tolist(),
            "keep_rate": rate,
            "mean_row": mean_row,
            "mean_col": mean_col,
            "mean_row_relative": (mean_row + 0.5) / self.grid.rows if mean_row is not None else None,
            "mean_col_relative": (mean_col + 0.5) / self.grid.cols if mean_col is not None else None,
            "row_profile": (row_totals / total).tolist() if total else [0.0] * self.grid.rows,
            "col_profile": (col_totals / total).tolist() if total else [0.0] * self.grid.cols,
            "object_recall": recall,
            "object_patches": self.object_patches,
            "object_patches_kept": self.object_patches_kept,
            "samples_with_objects": self.samples_with_objects,
        }


def _entry_objects(path: Path, image_id: str, entry: Any, grid: PatchGrid) -> list[frozenset[int]]:
    where = f"{path}: image {image_id!r}"
    if isinstance(entry, Mapping):
        side = entry.get("grid")
        if side is not None and side != grid.cols and side != [grid.rows, grid.cols]:
            raise ValueError(f"{where} uses a {side} patch grid but the model's is {grid.rows}x{grid.cols}")
        entry = entry.get("objects")
    if not isinstance(entry, list):
        raise ValueError(f"{where} must be a list of objects or {{'objects': [...]}}, got {type(entry).__name__}")
    objects = []
    for obj in entry:
        patches = obj.get("patches") if isinstance(obj, Mapping) else None
        if not isinstance(patches, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in patches):
            raise ValueError(f"{where}: every object needs 'patches', a list of ints, got {obj!r}")
        bad = [p for p in patches if not 0 <= p < grid.tokens]
        if bad:
            raise ValueError(f"{where}: patch indices must be in [0, {grid.tokens}), got {bad[:5]}")
        objects.append(frozenset(patches))
    return objects


def load_objects(path: str | os.PathLike[str], grid: PatchGrid) -> ObjectPatches:
    """Read an objects file: which grid patches each object of each image covers.

    Two forms are accepted (the shapes world writes the first)::

        {image_id: {"grid": 24, "patch": 14, "objects": [{"patches": [r * 24 + c, ...], ...}, ...]}, ...}
        {image_id: [{"patches": [r * 24 + c, ...], ...}, ...], ...}

    Image ids are the image file names without extension (GQA ``imageId``, TextVQA ``image_id``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not JSON, another layout, a grid other than ``grid``, or a patch index off the grid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"objects file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"objects file {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"objects file {path} must map image ids to objects, got {type(data).__name__}")
    return {str(k): _entry_objects(path, str(k), v, grid) for k, v in data.items()}
