"""Moved: deployment profiles live in :mod:`adaptive_svdprune.profiles`; trial choice in
:mod:`adaptive_svdprune.tradeoffs`. Kept so that imports written against earlier releases keep working."""

from __future__ import annotations

from adaptive_svdprune.profiles import Profile, TaskProfile, config_kwargs_for, load_profile, save_profile
from adaptive_svdprune.tradeoffs.constraints import select_for_constraint

__all__ = ["Profile", "TaskProfile", "config_kwargs_for", "load_profile", "save_profile", "select_for_constraint"]
