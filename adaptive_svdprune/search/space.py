"""NNI search spaces over SVD-Prune settings, and the parsing of the parameters a tuner hands to a trial.

A trial's parameters are ``variance_threshold`` (epsilon), ``budget`` (a token count or ``"adaptive"``) and,
optionally, ``min_tokens``/``max_tokens`` (the clip of the adaptive count) and, for LLaVA-NeXT/OneVision,
``anyres_split`` (a ``choice`` of ``"global"``/``"per_view"``: one selection over base view and crops, or one per
view) and ``center`` (a ``choice`` of ``false``/``true``: SVD-Prune on mean-centred features, which towers whose
tokens share a large mean need). The default space is the one of
``search/*.json``::

    {"variance_threshold": {"_type": "quniform", "_value": [0.70, 0.95, 0.05]},
     "budget": {"_type": "choice", "_value": [16, 32, 64, 128, 192, "adaptive"]}}

NNI tuners differ on mixed-type choices (checked with NNI 3.0): TPE, Random, Evolution and GridSearch accept
the ``"adaptive"`` string next to the integers; GP and Metis accept numeric choices only, so their spaces must
leave ``"adaptive"`` out. Anneal (numpy 2) and BOHB (ConfigSpace 1.x) do not work with today's releases.

Example:
    >>> space = search_space(budgets=(16, 64))
    >>> space["budget"]
    {'_type': 'choice', '_value': [16, 64, 'adaptive']}
    >>> parse_trial_parameters({"variance_threshold": 0.7000000000000001, "budget": "adaptive"})
    {'variance_threshold': 0.7, 'budget': None, 'min_tokens': 1, 'max_tokens': None}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from adaptive_svdprune.tradeoffs.results import PARAMETER_KEYS, normalize_budget

__all__ = [
    "ANYRES_SPLITS",
    "DEFAULT_BUDGETS",
    "SUPPORTED_TUNERS",
    "TRIAL_PARAMETERS",
    "check_search_space",
    "parse_anyres_split",
    "parse_trial_parameters",
    "search_space",
]

#: Keys a trial understands; anything else in a search space or ``--params`` is an error.
TRIAL_PARAMETERS: tuple[str, ...] = PARAMETER_KEYS
DEFAULT_BUDGETS: tuple[int, ...] = (16, 32, 64, 128, 192)
#: Tuners that run with NNI 3.0 on today's numpy/ConfigSpace (see DESIGN.md, "Traps").
SUPPORTED_TUNERS: tuple[str, ...] = ("TPE", "Random", "Evolution", "GridSearch", "GP", "Metis")
_NUMERIC_ONLY_TUNERS = ("GP", "Metis")
#: Values of the ``anyres_split`` parameter (``adaptive_svdprune.models.anyres.SPLITS``; NNI-only code stays
#: free of torch, and ``tests/search/test_space.py`` checks that the two agree).
ANYRES_SPLITS: tuple[str, ...] = ("global", "per_view")


def search_space(
    eps_range: tuple[float, float, float] = (0.70, 0.95, 0.05),
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    adaptive: bool = True,
    min_tokens: Sequence[int] | None = None,
    max_tokens: Sequence[int] | None = None,
    anyres_splits: Sequence[str] | None = None,
    center: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """An NNI search space over epsilon and the budget (and optionally the adaptive clip).

    Args:
        eps_range: ``(low, high, q)`` of the ``quniform`` epsilon, within ``(0, 1]``.
        budgets: fixed token budgets to try.
        adaptive: add ``"adaptive"`` (no fixed budget) to the budget choice.
        min_tokens: choices of the lower clip of the adaptive count (``None``: not searched).
        max_tokens: choices of the upper clip of the adaptive count (``None``: not searched).
        anyres_splits: LLaVA-NeXT/OneVision: choices of ``anyres_split`` (``None``: not searched).
        center: choices of ``center`` (``(False, True)``: search it; ``None``: not searched, uncentred).

    Example:
        >>> search_space(budgets=(16,), adaptive=False, center=(False, True))["center"]
        {'_type': 'choice', '_value': [False, True]}
    """
    low, high, q = eps_range
    if not (0 < low <= high <= 1) or q <= 0:
        raise ValueError(f"eps_range must be (low, high, q) with 0 < low <= high <= 1 and q > 0, got {eps_range}")
    for budget in budgets:
        normalize_budget(budget)
    choices: list[Any] = [int(b) for b in budgets] + (["adaptive"] if adaptive else [])
    if not choices:
        raise ValueError("the budget choice is empty: give budgets or adaptive=True")
    space: dict[str, Any] = {
        "variance_threshold": {"_type": "quniform", "_value": [low, high, q]},
        "budget": {"_type": "choice", "_value": choices},
    }
    for name, values in (("min_tokens", min_tokens), ("max_tokens", max_tokens)):
        if values is not None:
            space[name] = {"_type": "choice", "_value": [int(v) for v in values]}
    if anyres_splits is not None:
        space["anyres_split"] = {"_type": "choice", "_value": list(anyres_splits)}
        _check_entry("anyres_split", space["anyres_split"])
    if center is not None:
        space["center"] = {"_type": "choice", "_value": list(center)}
        _check_entry("center", space["center"])
    return space


#: Parameters that are categories, not numbers: a ``choice`` only, and not for the numeric-only tuners.
_CATEGORIES: dict[str, list[Any]] = {"anyres_split": list(ANYRES_SPLITS), "center": [False, True]}
#: NNI sampling types whose ``_value`` is a list of choices, and those whose ``_value`` is ``[low, high(, q)]``.
_CHOICE_TYPES = ("choice",)
_RANGE_TYPES = ("uniform", "quniform", "loguniform", "qloguniform", "randint")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(name: str, value: Any) -> None:
    """One value a tuner may hand a trial for ``name``; ``ValueError`` naming both when a trial would fail."""
    if name == "variance_threshold":
        if not _is_number(value) or not 0 < value <= 1:
            raise ValueError(f"search space: variance_threshold must be a number in (0, 1], got {value!r}")
    elif name == "anyres_split":
        if value not in ANYRES_SPLITS:
            raise ValueError(f"search space: anyres_split must be one of {list(ANYRES_SPLITS)}, got {value!r}")
    elif name == "center":
        if not isinstance(value, bool):
            raise ValueError(f"search space: center must be true or false, got {value!r}")
    elif name == "budget":
        adaptive = isinstance(value, str) and value.strip().lower() == "adaptive"
        if not adaptive and (not _is_number(value) or value < 1 or float(value) != int(value)):
            raise ValueError(f"search space: budget must be a positive int or 'adaptive', got {value!r}")
    elif not _is_number(value) or value < 1 or float(value) != int(value):  # min_tokens, max_tokens
        raise ValueError(f"search space: {name} must be a positive int, got {value!r}")


def _check_entry(name: str, spec: Any) -> None:
    if not isinstance(spec, Mapping) or "_type" not in spec or "_value" not in spec:
        raise ValueError(f"search space entry {name!r} must be {{'_type': ..., '_value': [...]}}, got {spec!r}")
    kind, values = spec["_type"], spec["_value"]
    if kind not in (*_CHOICE_TYPES, *_RANGE_TYPES):
        raise ValueError(f"search space: {name} has _type {kind!r}; use one of {[*_CHOICE_TYPES, *_RANGE_TYPES]}")
    if name in _CATEGORIES and kind not in _CHOICE_TYPES:
        raise ValueError(f"search space: {name} has _type {kind!r}; use choice of {_CATEGORIES[name]}")
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"search space: {name} _value must be a non-empty list, got {values!r}")
    if kind in _CHOICE_TYPES:
        for value in values:
            _check_value(name, value)
        return
    expected = 3 if kind.startswith("q") else 2
    if len(values) != expected or not all(_is_number(v) for v in values):
        shape = "[low, high, q]" if expected == 3 else "[low, high]"
        raise ValueError(f"search space: {name} {kind} needs {expected} numbers {shape}, got {values!r}")
    low, high = values[0], values[1]
    if low > high or (expected == 3 and values[2] <= 0):
        raise ValueError(f"search space: {name} {kind} needs low <= high (and q > 0), got {values!r}")
    if name == "budget" and kind in ("uniform", "loguniform"):
        raise ValueError(f"search space: budget {kind} gives fractional budgets; use choice, randint or quniform")
    _check_value(name, low)
    # randint's high is exclusive; the others reach it
    _check_value(name, high - 1 if kind == "randint" and high > low else high)


def check_search_space(space: Mapping[str, Any], tuner: str | None = None) -> None:
    """Reject spaces a trial or the tuner cannot handle, with a message that names the key and the value.

    Every value a tuner can sample is checked as a trial would check it (epsilon in ``(0, 1]``, positive
    integer budgets or ``"adaptive"``, positive token clips), so a bad space fails before NNI starts instead
    of failing every trial with the reason buried in the trial logs.

    Example:
        >>> check_search_space(search_space(), tuner="GP")
        Traceback (most recent call last):
        ...
        ValueError: tuner GP accepts numeric choices only, but budget has ['adaptive']; use search_space(adaptive=False)
        >>> check_search_space({"variance_threshold": {"_type": "choice", "_value": [0.9, 1.5]}})
        Traceback (most recent call last):
        ...
        ValueError: search space: variance_threshold must be a number in (0, 1], got 1.5
    """
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"a search space must be a non-empty dict, got {space!r}")
    unknown = sorted(set(space) - set(TRIAL_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown search space keys {unknown}; a trial understands {list(TRIAL_PARAMETERS)}")
    for name, spec in space.items():
        _check_entry(name, spec)
    if tuner is None:
        return
    if tuner not in SUPPORTED_TUNERS:
        raise ValueError(f"tuner {tuner!r} is not supported; use one of {list(SUPPORTED_TUNERS)}")
    if tuner in _NUMERIC_ONLY_TUNERS:
        for name, spec in space.items():
            if name in _CATEGORIES:  # a category, not a number
                fix = "--anyres-split" if name == "anyres_split" else "--params '{\"center\": true}'"
                raise ValueError(f"tuner {tuner} accepts numeric choices only, but the space searches {name}; "
                                 f"use TPE, Random, Evolution or GridSearch (or fix {fix} in the trial command)")
            strings = [v for v in spec["_value"] if isinstance(v, str)] if spec["_type"] == "choice" else []
            if strings:
                raise ValueError(
                    f"tuner {tuner} accepts numeric choices only, but {name} has {strings}; "
                    "use search_space(adaptive=False)"
                )


def _int_or_none(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return value


def parse_anyres_split(params: Mapping[str, Any], default: str = "global") -> str:
    """The ``anyres_split`` of a tuner's parameter dict (``default`` when the space does not search it).

    Example:
        >>> parse_anyres_split({"budget": 64}), parse_anyres_split({"anyres_split": "per_view"})
        ('global', 'per_view')
    """
    value = params.get("anyres_split", default)
    if value not in ANYRES_SPLITS:
        raise ValueError(f"anyres_split must be one of {list(ANYRES_SPLITS)}, got {value!r}")
    return str(value)


def parse_trial_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """``SVDPruneConfig`` keyword arguments from a tuner's parameter dict (see also :func:`parse_anyres_split`).

    Epsilon is rounded to 6 decimals (``quniform`` yields ``0.7000000000000001``); ``budget`` ``"adaptive"``
    becomes ``None``; missing keys take ``SVDPruneConfig``'s defaults (epsilon 0.9, adaptive, clip ``[1, None]``);
    ``center`` appears only when the parameters hold it (so settings without it keep their run folders).

    Raises:
        ValueError: unknown keys, or values of the wrong type (the values themselves are checked by
            ``SVDPruneConfig``).
    """
    if not isinstance(params, Mapping):
        raise ValueError(f"trial parameters must be a dict, got {params!r}")
    unknown = sorted(set(params) - set(TRIAL_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown trial parameters {unknown}; expected some of {list(TRIAL_PARAMETERS)}")
    eps = params.get("variance_threshold", 0.9)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise ValueError(f"variance_threshold must be a number, got {eps!r}")
    min_tokens = _int_or_none("min_tokens", params.get("min_tokens"))
    parsed: dict[str, Any] = {
        "variance_threshold": round(float(eps), 6),
        "budget": normalize_budget(params.get("budget")),
        "min_tokens": 1 if min_tokens is None else min_tokens,
        "max_tokens": _int_or_none("max_tokens", params.get("max_tokens")),
    }
    if "center" in params:
        if not isinstance(params["center"], bool):
            raise ValueError(f"center must be true or false, got {params['center']!r}")
        parsed["center"] = params["center"]
    return parsed
