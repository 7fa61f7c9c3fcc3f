"""Deployment profiles: per-task SVD-Prune settings (epsilon, budget) for one deployment, as small YAML files.

Schema, load/save and per-task lookup. A profile is loaded at inference time, so this package depends on
``pruning/`` only: reading one needs neither NNI, Lightning nor W&B.

Example:
    >>> import tempfile
    >>> profile = Profile("edge", tasks={"gqa": TaskProfile(variance_threshold=0.9, budget=None)})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     load_profile(save_profile(profile, f"{out}/edge.yaml")).config_for("gqa").adaptive
    True
"""

from __future__ import annotations

from adaptive_svdprune.profiles.profile import (
    Profile,
    TaskProfile,
    TrialLike,
    config_kwargs_for,
    load_profile,
    save_profile,
)
from adaptive_svdprune.profiles.schema import FORMAT_VERSION, parse_profile, profile_to_dict

__all__ = [
    "FORMAT_VERSION",
    "Profile",
    "TaskProfile",
    "TrialLike",
    "config_kwargs_for",
    "load_profile",
    "parse_profile",
    "profile_to_dict",
    "save_profile",
]
