"""On-disk schema of deployment profiles: validation of loaded YAML and the dict that is written.

Layout (``budget: null`` = adaptive; fields that are unset are left out, except ``budget``)::

    version: 1
    name: edge
    model: llava-hf/llava-1.5-7b-hf
    deployment: Jetson Orin, <= 1.2 TFLOPs per sample
    created: '2026-01-31'
    experiments: [k3x9qz]
    tasks:
      gqa:
        variance_threshold: 0.9
        budget: null
        accuracy: 0.61
        tflops: 1.13
        mean_kept_tokens: 92.4
        trial_id: AbC12
        constraint: max_tflops<=1.2
      textvqa:                    # a LLaVA-NeXT/OneVision search may also choose the view split
        variance_threshold: 0.8
        budget: 320
        anyres_split: per_view
        center: true              # a search that tuned centring (SVD-Prune on mean-centred features)

Unknown keys are errors (a typo such as ``varaince_threshold`` must not silently fall back to a default).

Example:
    >>> meta, tasks = parse_profile({"name": "x", "tasks": {"gqa": {"variance_threshold": 0.9, "budget": 64}}})
    >>> meta["name"], tasks["gqa"]["budget"]
    ('x', 64)
    >>> parse_profile({"name": "x", "tasks": {"gqa": {"variance_threshold": 0.9, "budgett": 64}}}, "p.yaml")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: p.yaml: unknown key 'tasks.gqa.budgett'; known: ['accuracy', 'anyres_split', 'budget', ...]
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_svdprune.profiles import Profile

__all__ = ["ANYRES_SPLITS", "FORMAT_VERSION", "HEADER", "PROFILE_KEYS", "TASK_KEYS", "parse_profile", "profile_to_dict"]

FORMAT_VERSION = 1
PROFILE_KEYS: tuple[str, ...] = ("version", "name", "model", "deployment", "created", "experiments", "tasks")
TASK_KEYS: tuple[str, ...] = (
    "variance_threshold",
    "budget",
    "min_tokens",
    "max_tokens",
    "accuracy",
    "tflops",
    "mean_kept_tokens",
    "trial_id",
    "experiment",
    "constraint",
    "anyres_split",
    "center",
)
#: Values of ``anyres_split`` (``adaptive_svdprune.models.anyres.SPLITS``; profiles sit below models, a test keeps
#: the two equal). Absent means the default, ``global``.
ANYRES_SPLITS: tuple[str, ...] = ("global", "per_view")
HEADER = (
    "# adaptive-svdprune deployment profile: per-task SVD-Prune settings chosen from an NNI search.\n"
    "# budget: null = adaptive (keep tokens until the normalised leverage reaches variance_threshold).\n"
    "# accuracy / tflops (per sample) / mean_kept_tokens are what the search measured for that setting.\n"
    '# Use: load_profile("<this file>").config_for("<task>")\n'
)


def _known(keys: Any, allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for key in keys:
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {prefix + str(key)!r}; known: {sorted(allowed)}")


def _opt_str(value: Any, key: str, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{where}: {key} must be a string, got {value!r}")


def _opt_number(value: Any, key: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{where}: {key} must be a number or null, got {value!r}")
    return float(value)


def _opt_count(value: Any, key: str, where: str, adaptive_ok: bool = False) -> int | None:
    if value is None or (adaptive_ok and value == "adaptive"):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {key} must be a positive int or null, got {value!r}")
    return value


def _task(entry: Any, task: str, where: str) -> dict[str, Any]:
    prefix = f"tasks.{task}."
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: tasks.{task} must be a mapping, got {entry!r}")
    _known(entry, TASK_KEYS, where, prefix)
    for key in ("variance_threshold", "budget"):
        if key not in entry:
            raise ValueError(f"{where}: missing key {prefix + key!r}")
    eps = _opt_number(entry["variance_threshold"], prefix + "variance_threshold", where)
    if eps is None or not 0 < eps <= 1:
        raise ValueError(f"{where}: {prefix}variance_threshold must be in (0, 1], got {entry['variance_threshold']!r}")
    out: dict[str, Any] = {"variance_threshold": eps}
    out["budget"] = _opt_count(entry["budget"], prefix + "budget", where, adaptive_ok=True)
    for key in ("min_tokens", "max_tokens"):
        out[key] = _opt_count(entry.get(key), prefix + key, where)
    if out["min_tokens"] is not None and out["max_tokens"] is not None and out["min_tokens"] > out["max_tokens"]:
        raise ValueError(
            f"{where}: {prefix}min_tokens must be <= max_tokens, got {out['min_tokens']} > {out['max_tokens']}"
        )
    for key in ("accuracy", "tflops", "mean_kept_tokens"):
        out[key] = _opt_number(entry.get(key), prefix + key, where)
    for key in ("trial_id", "experiment", "constraint"):
        out[key] = _opt_str(entry.get(key), prefix + key, where)
    split = entry.get("anyres_split")
    if split is not None and split not in ANYRES_SPLITS:
        raise ValueError(f"{where}: {prefix}anyres_split must be one of {list(ANYRES_SPLITS)}, got {split!r}")
    out["anyres_split"] = split
    center = entry.get("center")
    if center is not None and not isinstance(center, bool):
        raise ValueError(f"{where}: {prefix}center must be true or false, got {center!r}")
    out["center"] = center
    return out


def parse_profile(data: Any, where: str = "profile") -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Validate loaded YAML; returns ``(Profile metadata kwargs, {task: TaskProfile kwargs})``.

    Raises:
        ValueError: naming ``where`` and the offending key or value.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    _known(data, PROFILE_KEYS, where, "")
    version = data.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(f"{where}: unsupported version {version!r}; this release reads version {FORMAT_VERSION}")
    for key in ("name", "tasks"):
        if key not in data:
            raise ValueError(f"{where}: missing key {key!r}")
    name = _opt_str(data["name"], "name", where)
    if not name:
        raise ValueError(f"{where}: name must be a non-empty string, got {data['name']!r}")
    meta: dict[str, Any] = {"name": name}
    for key in ("model", "deployment"):
        meta[key] = _opt_str(data.get(key), key, where)
    created = data.get("created")
    if isinstance(created, (_dt.date, _dt.datetime)):  # unquoted dates are parsed by YAML
        created = created.isoformat()
    if created is not None:
        meta["created"] = _opt_str(created, "created", where)
    experiments = data.get("experiments") or []
    if isinstance(experiments, str):
        experiments = [experiments]
    if not isinstance(experiments, list):
        raise ValueError(f"{where}: experiments must be a list of ids, got {experiments!r}")
    meta["experiments"] = [str(e) for e in experiments]
    tasks = data["tasks"]
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError(f"{where}: tasks must be a non-empty mapping of task name -> settings, got {tasks!r}")
    return meta, {str(task): _task(entry, str(task), where) for task, entry in tasks.items()}


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The YAML document of ``profile`` (unset optional fields left out, ``budget`` always present)."""
    tasks: dict[str, dict[str, Any]] = {}
    for task, entry in profile.tasks.items():
        values = {key: getattr(entry, key) for key in TASK_KEYS}
        tasks[task] = {k: v for k, v in values.items() if v is not None or k == "budget"}
    data: dict[str, Any] = {"version": FORMAT_VERSION, "name": profile.name}
    for key in ("model", "deployment"):
        if getattr(profile, key) is not None:
            data[key] = getattr(profile, key)
    data["created"] = profile.created
    if profile.experiments:
        data["experiments"] = list(profile.experiments)
    data["tasks"] = tasks
    return data
