"""Model integration: the pruning wrappers (one per family, picked by ``prune_model``), vision features and
their on-disk cache, named offline checkpoints.

Importing this package does not import transformers; the names below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "PreparedInputs": "adaptive_svdprune.models.llava",
    "PrunedLlava": "adaptive_svdprune.models.llava",
    "load_llava": "adaptive_svdprune.models.llava",
    "prune_llava": "adaptive_svdprune.models.llava",
    "VisionFeatures": "adaptive_svdprune.models.vision",
    "extract_vision_features": "adaptive_svdprune.models.vision",
    "collapse_image_placeholders": "adaptive_svdprune.models.placeholders",
    "image_placeholder_runs": "adaptive_svdprune.models.placeholders",
    "build_tiny_llava": "adaptive_svdprune.models.tiny",
    "tiny_llava_path": "adaptive_svdprune.models.tiny",
    "FeatureCache": "adaptive_svdprune.models.feature_cache",
    "model_cache_key": "adaptive_svdprune.models.feature_cache",
    "prune_model": "adaptive_svdprune.models.families",
    "load_model": "adaptive_svdprune.models.families",
    "register_family": "adaptive_svdprune.models.families",
    "supported_model_classes": "adaptive_svdprune.models.families",
    "AnyresFeatures": "adaptive_svdprune.models.llava_next",
    "PrunedLlavaNext": "adaptive_svdprune.models.llava_next",
    "PrunedLlavaOnevision": "adaptive_svdprune.models.llava_next",
    "AnyresImage": "adaptive_svdprune.models.anyres",
    "select_anyres": "adaptive_svdprune.models.anyres",
    "build_tiny_anyres": "adaptive_svdprune.models.tiny_next",
    "tiny_next_path": "adaptive_svdprune.models.tiny_next",
    "tiny_onevision_path": "adaptive_svdprune.models.tiny_next",
    "MergedVisionFeatures": "adaptive_svdprune.models.qwen_features",
    "PrunedQwenVL": "adaptive_svdprune.models.qwen_vl",
    "load_qwen_vl": "adaptive_svdprune.models.qwen_vl",
    "prune_qwen_vl": "adaptive_svdprune.models.qwen_vl",
    "build_tiny_qwen_vl": "adaptive_svdprune.models.tiny_qwen",
    "tiny_qwen_vl_path": "adaptive_svdprune.models.tiny_qwen",
    "MODEL_NAMES": "adaptive_svdprune.models.names",
    "register_model_name": "adaptive_svdprune.models.names",
    "resolve_model_path": "adaptive_svdprune.models.names",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adaptive_svdprune.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
