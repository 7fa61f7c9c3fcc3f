"""On-disk cache of vision-tower features, shared by every trial of a search.

SVD-Prune looks at the vision features only, never at the text, so an image's pre-projector features (and its
CLS attention, for the VisionZip-style baseline) are computed once and reused by every trial: a cached trial
costs selection, projector and language model only. Entries are keyed by the model (name and the vision
settings that change the features), the image file (path, size and modification time) and the feature layer.
Writes go to a temporary file that is renamed into place, so trials running concurrently never read a partial
entry; two trials computing the same entry simply write the same bytes twice.

Every entry is validated when read (a file torch can load, a ``features`` tensor of floating dtype and of the
expected shape and dtype when the cache knows them, finite values, a matching ``cls_attention``): a bad entry is
deleted with a warning naming its file, counted in ``dropped``, and recomputed by the caller. Non-finite
features are never stored.

Example:
    >>> import tempfile, torch
    >>> cache = FeatureCache(tempfile.mkdtemp(), model_key="tiny")
    >>> cache.get("missing.jpg") is None
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

__all__ = ["FeatureCache", "entry_problem", "model_cache_key"]


def model_cache_key(model: Any, name: str) -> str:
    """A key naming everything about ``model`` that changes its pre-projector features."""
    config = model.config
    vision = config.vision_config
    parts = {
        "name": str(name),
        "layer": getattr(config, "vision_feature_layer", None),  # None: Qwen2-VL (merged tower outputs)
        "strategy": getattr(config, "vision_feature_select_strategy", None),
        "vision": {k: getattr(vision, k, None) for k in ("hidden_size", "num_hidden_layers", "image_size",
                                                          "patch_size")},
        # Qwen2-VL towers only (absent elsewhere, so LLaVA keys are unchanged)
        **{k: getattr(vision, k) for k in ("spatial_merge_size", "out_hidden_size") if hasattr(vision, k)},
        "dtype": str(next(model.parameters()).dtype),
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def entry_problem(entry: object, feature_shape: tuple[int, ...] | None = None,
                  dtype: torch.dtype | None = None) -> str | None:
    """Why a cache entry cannot be used, or None when it is sound.

    Example:
        >>> entry_problem({"features": torch.zeros(4, 2)}) is None
        True
        >>> entry_problem({"features": torch.full((4, 2), float("nan"))})
        'features hold non-finite values (NaN or Inf)'
        >>> entry_problem({"features": torch.zeros(4, 2)}, feature_shape=(576, 2))
        'features have shape (4, 2), expected (576, 2)'
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("features"), torch.Tensor):
        return f"not a dict with a 'features' tensor (got {type(entry).__name__})"
    # grid_thw: Qwen2-VL images; image_size: anyres (LLaVA-NeXT/OneVision) entries of shape (views, T, D)
    unknown = sorted(set(entry) - {"features", "cls_attention", "grid_thw", "image_size"})
    if unknown:
        return f"unexpected keys {unknown}"
    features = entry["features"]
    if features.dim() != (3 if "image_size" in entry else 2) or not features.is_floating_point():
        return (f"features must be a 2-D (3-D with image_size) floating tensor, got {tuple(features.shape)} "
                f"{features.dtype}")
    if feature_shape is not None and tuple(features.shape) != tuple(feature_shape):
        return f"features have shape {tuple(features.shape)}, expected {tuple(feature_shape)}"
    if dtype is not None and features.dtype != dtype:
        return f"features have dtype {features.dtype}, expected {dtype}"
    if not bool(torch.isfinite(features).all()):
        return "features hold non-finite values (NaN or Inf)"
    attn = entry.get("cls_attention")
    if attn is not None:
        if not isinstance(attn, torch.Tensor) or tuple(attn.shape) != tuple(features.shape[:-1]):
            shape = tuple(attn.shape) if isinstance(attn, torch.Tensor) else type(attn).__name__
            return f"cls_attention must have shape {tuple(features.shape[:-1])}, got {shape}"
        if not bool(torch.isfinite(attn).all()):
            return "cls_attention holds non-finite values (NaN or Inf)"
    return None


class FeatureCache:
    """Vision features per image file, stored as ``<dir>/<model_key>/<image_key>.pt``.

    Args:
        directory: cache folder (created on demand).
        model_key: from :func:`model_cache_key`.
        feature_shape: the ``(T, D)`` every entry must have (``None``: any 2-D shape).
        dtype: the dtype every entry must have (``None``: any floating dtype).
    """

    def __init__(self, directory: str | os.PathLike[str], model_key: str,
                 feature_shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None) -> None:
        self.directory = Path(directory) / model_key
        self.feature_shape = feature_shape
        self.dtype = dtype
        self.hits = 0
        self.misses = 0
        self.dropped = 0

    @staticmethod
    def _image_key(image_path: str | os.PathLike[str]) -> str:
        path = Path(image_path).resolve()
        stat = path.stat() if path.exists() else None
        stamp = f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}"
        return hashlib.sha1(stamp.encode()).hexdigest()

    def _file(self, image_path: str | os.PathLike[str]) -> Path:
        return self.directory / f"{self._image_key(image_path)}.pt"

    def _drop(self, file: Path, image_path: str | os.PathLike[str], reason: str) -> None:
        self.dropped += 1
        self.misses += 1
        file.unlink(missing_ok=True)
        warnings.warn(f"feature cache: dropped bad entry {file} (image {image_path}): {reason}; recomputing it",
                      stacklevel=3)

    def get(self, image_path: str | os.PathLike[str]) -> dict[str, torch.Tensor] | None:
        """The cached entry ``{"features": (T, D), "cls_attention"?: (T,)}``, or None (missing or dropped)."""
        file = self._file(image_path)
        if not file.exists():
            self.misses += 1
            return None
        try:
            entry = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # a corrupt entry (disk full, killed writer on a non-atomic FS) is recomputed
            self._drop(file, image_path, f"cannot be loaded ({type(err).__name__}: {err})")
            return None
        problem = entry_problem(entry, self.feature_shape, self.dtype)
        if problem is not None:
            self._drop(file, image_path, problem)
            return None
        self.hits += 1
        return entry

    def put(self, image_path: str | os.PathLike[str], entry: dict[str, torch.Tensor]) -> None:
        """Store ``entry`` atomically (temporary file + rename); an unsound entry is not stored (warning)."""
        problem = entry_problem(entry, self.feature_shape, self.dtype)
        if problem is not None:
            warnings.warn(f"feature cache: not storing the features of {image_path}: {problem}", stacklevel=2)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, handle)
            os.replace(tmp, self._file(image_path))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
