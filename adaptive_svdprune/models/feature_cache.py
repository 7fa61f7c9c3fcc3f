"""On-disk cache of vision-tower features, shared by every trial of a search.

SVD-Prune looks at the vision features only, never at the text, so an image's pre-projector features (and its
CLS attention, for the VisionZip-style baseline) are computed once and reused by every trial: a cached trial
costs selection, projector and language model only. Entries are keyed by the model (name and the vision
settings that change the features), the image file (path, size and modification time) and the feature layer.
Writes go to a temporary file that is renamed into place, so trials running concurrently never read a partial
entry; two trials computing the same entry simply write the same bytes twice.

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
from pathlib import Path
from typing import Any

import torch

__all__ = ["FeatureCache", "model_cache_key"]


def model_cache_key(model: Any, name: str) -> str:
    """A key naming everything about ``model`` that changes its pre-projector features."""
    config = model.config
    vision = config.vision_config
    parts = {
        "name": str(name),
        "layer": config.vision_feature_layer,
        "strategy": config.vision_feature_select_strategy,
        "vision": {k: getattr(vision, k, None) for k in ("hidden_size", "num_hidden_layers", "image_size",
                                                          "patch_size")},
        "dtype": str(next(model.parameters()).dtype),
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class FeatureCache:
    """Vision features per image file, stored as ``<dir>/<model_key>/<image_key>.pt``.

    Args:
        directory: cache folder (created on demand).
        model_key: from :func:`model_cache_key`.
    """

    def __init__(self, directory: str | os.PathLike[str], model_key: str) -> None:
        self.directory = Path(directory) / model_key
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _image_key(image_path: str | os.PathLike[str]) -> str:
        path = Path(image_path).resolve()
        stat = path.stat() if path.exists() else None
        stamp = f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}"
        return hashlib.sha1(stamp.encode()).hexdigest()

    def _file(self, image_path: str | os.PathLike[str]) -> Path:
        return self.directory / f"{self._image_key(image_path)}.pt"

    def get(self, image_path: str | os.PathLike[str]) -> dict[str, torch.Tensor] | None:
        """The cached entry ``{"features": (T, D), "cls_attention"?: (T,)}``, or None."""
        file = self._file(image_path)
        if not file.exists():
            self.misses += 1
            return None
        try:
            entry = torch.load(file, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt entry (disk full, killed writer on a non-atomic FS) is recomputed
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, image_path: str | os.PathLike[str], entry: dict[str, torch.Tensor]) -> None:
        """Store ``entry`` atomically (temporary file + rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, handle)
            os.replace(tmp, self._file(image_path))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
