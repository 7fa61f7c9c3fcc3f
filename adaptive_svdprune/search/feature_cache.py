"""Moved: the vision-feature cache lives in :mod:`adaptive_svdprune.models.feature_cache`. Kept so that imports
written against earlier releases keep working."""

from __future__ import annotations

from adaptive_svdprune.models.feature_cache import FeatureCache, model_cache_key

__all__ = ["FeatureCache", "model_cache_key"]
