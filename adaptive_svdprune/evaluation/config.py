"""``EvalConfig``: the settings of one evaluation run, type-checked, with one precedence rule for profiles.

Precedence, lowest first: the defaults below < a deployment ``profile``'s entry for ``task`` < settings given
explicitly (a keyword argument, a key of the config file, a command-line flag). A profile only fills the
SVD-Prune keys that were *not* given (``variance_threshold``, ``budget``, ``min_tokens``, ``max_tokens``,
``anyres_split``, ``center``) and cannot be combined with a baseline ``method``.

Example:
    >>> EvalConfig(budget=32).selector_config().budget
    32
    >>> EvalConfig(max_new_tokens="four")
    Traceback (most recent call last):
    ...
    TypeError: max_new_tokens must be an int, got 'four' (str)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from adaptive_svdprune.models.anyres import SPLITS
from adaptive_svdprune.pruning.config import SOLVERS, SelectorConfig, SVDPruneConfig, config_from_dict

__all__ = ["DTYPES", "PRECISIONS", "PROFILE_KEYS", "EvalConfig"]

_REPO_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"

#: Weight dtypes accepted by ``dtype`` (``None``: as saved).
DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
#: Lightning ``precision`` values accepted by ``precision`` (``None``: Lightning's default).
PRECISIONS: tuple[str, ...] = ("64", "64-true", "32", "32-true", "16", "16-mixed", "16-true", "bf16", "bf16-mixed",
                               "bf16-true", "transformer-engine", "transformer-engine-float16")
#: The SVD-Prune keys a profile fills when they are not given explicitly.
PROFILE_KEYS: tuple[str, ...] = ("variance_threshold", "budget", "min_tokens", "max_tokens", "anyres_split",
                                 "center")
_PROFILE_DEFAULTS: dict[str, Any] = {"variance_threshold": 0.9, "budget": 64, "min_tokens": 1, "max_tokens": None,
                                     "anyres_split": "global", "center": False}
_ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


class _Unset:
    """Default of the profile keys: "not given", so a profile can tell a default from an explicit value."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def _type_error(key: str, value: object, expected: str) -> TypeError:
    return TypeError(f"{key} must be {expected}, got {value!r} ({type(value).__name__})")


def _check_bool(key: str, value: object) -> None:
    # NOTE: no truthiness: the YAML string "no" is a str, and would be True in `if value:`.
    if not isinstance(value, bool):
        raise _type_error(key, value, "a bool (true/false)")


def _check_int(key: str, value: object, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(key, value, "an int" + (" or null" if optional else ""))
    if value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{key} must be {wanted}{' or null' if optional else ''}, got {value}")


def _check_str(key: str, value: object, optional: bool = False, choices: tuple[str, ...] | None = None) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise _type_error(key, value, "a non-empty string" + (" or null" if optional else ""))
    if choices is not None and value not in choices:
        raise ValueError(f"{key} must be one of {list(choices)}, got {value!r}")


@dataclass
class EvalConfig:
    """Everything one evaluation run needs (the keys of ``configs/*.yaml``); every value is type-checked.

    Args:
        model: ``"tiny"`` (the offline tiny LLaVA), a registered name, a hub id such as
            ``"llava-hf/llava-1.5-7b-hf"`` or a folder.
        task: ``"gqa"``, ``"textvqa"`` or ``"jsonl"``.
        data: the task's folder in the official layout (``None`` with the tiny model: the bundled fixtures).
        method: ``"svd"`` or a baseline (``none``, ``random``, ``uniform``, ``l2norm``, ``cls_attention``,
            ``fastv``).
        center: SVD-Prune on mean-centred features (``SVDPruneConfig.center``; off in the paper). Towers whose
            tokens share a large mean otherwise get a rank-1 subspace, and leverage then ranks by norm. A
            profile's entry may set it (a search that tuned it).
        variance_threshold, budget, min_tokens, max_tokens, solver: SVD-Prune settings (``budget=None`` is
            adaptive); baselines use ``budget``. Defaults 0.9, 64, 1, None unless a profile gives them.
        anyres_split: LLaVA-NeXT/OneVision: ``"global"`` (default: one selection over base view and crops) or
            ``"per_view"`` (one per view, the budget shared in proportion to their token counts); ``"per_view"``
            on another family is an error when the run starts (before the model is loaded). A profile's entry
            may set it (a search that tuned the split).
        profile: a deployment profile; its entry for ``task`` fills the SVD-Prune keys not given explicitly
            (explicit settings beat the profile).
        fidelity: also answer with the unpruned model (on the same cached features) and report agreement.
        feature_cache: folder of the vision-feature cache shared across runs (``None``: no cache).
        out: output folder (``metrics.json``, ``predictions.jsonl``, ``run.json``, logs). A run resumes only
            from predictions written with the same settings (see ``run.json``).
        overwrite: discard the predictions already in ``out`` instead of resuming from them.
        wandb: log to Weights & Biases (offline unless ``WANDB_MODE`` says otherwise; ``disabled`` disables).
        wandb_group: the W&B group (default: the NNI experiment, else the profile's name, else ``out``'s name).
        dtype: weight dtype (``float32``, ``float16``, ``bfloat16``; ``None``: as saved).
        precision: Lightning ``precision`` (``None``: Lightning's default).
        num_workers: DataLoader worker processes (images are decoded there).
        accelerator, devices, strategy: Lightning's; several devices evaluate each question exactly once.
    """

    model: str = "tiny"
    task: str = "gqa"
    data: str | None = None
    method: str = "svd"
    variance_threshold: float = _UNSET
    budget: int | None = _UNSET
    min_tokens: int = _UNSET
    max_tokens: int | None = _UNSET
    solver: str = "auto"
    center: bool = _UNSET
    seed: int = 0
    fastv_layer: int = 2
    anyres_split: str = _UNSET
    profile: str | None = None
    batch_size: int = 4
    limit: int | None = None
    max_new_tokens: int = 16
    ocr: bool = False
    skip_bad: bool = False
    split: str | None = None
    fidelity: bool = True
    feature_cache: str | None = None
    out: str = "runs/eval"
    overwrite: bool = False
    wandb: bool = True
    wandb_project: str = "adaptive-svdprune"
    wandb_group: str | None = None
    dtype: str | None = None
    precision: str | None = None
    num_workers: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("data", "feature_cache", "out", "profile"):  # paths may come as Path objects
            value = getattr(self, key)
            if isinstance(value, os.PathLike):
                setattr(self, key, os.fspath(value))
        for key in ("model", "task", "method", "out", "wandb_project", "strategy"):
            _check_str(key, getattr(self, key))
        for key in ("data", "profile", "split", "feature_cache", "wandb_group"):
            _check_str(key, getattr(self, key), optional=True)
        _check_str("solver", self.solver, choices=SOLVERS)
        _check_str("dtype", self.dtype, optional=True, choices=DTYPES)
        _check_str("accelerator", self.accelerator, choices=_ACCELERATORS)
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            self.precision = str(self.precision)  # Lightning's 16 / 32 / 64
        _check_str("precision", self.precision, optional=True, choices=PRECISIONS)
        for key in ("ocr", "skip_bad", "fidelity", "overwrite", "wandb", "progress_bar"):
            _check_bool(key, getattr(self, key))
        if self.center is not _UNSET:
            _check_bool("center", self.center)
            if self.center and self.method != "svd":
                raise ValueError(f"center applies to SVD-Prune only, not method {self.method!r}")
        for key, minimum in (("batch_size", 1), ("max_new_tokens", 1), ("fastv_layer", 0), ("num_workers", 0)):
            _check_int(key, getattr(self, key), minimum)
        _check_int("seed", self.seed, -(2**63))
        _check_int("limit", self.limit, 1, optional=True)
        self.devices = _check_devices(self.devices)
        if not isinstance(self.extra, dict):
            raise _type_error("extra", self.extra, "a mapping")
        self._resolve_profile_keys()
        _check_str("anyres_split", self.anyres_split, choices=SPLITS)
        eps = self.variance_threshold
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise _type_error("variance_threshold", eps, "a number in (0, 1]")
        if not (math.isfinite(eps) and 0.0 < eps <= 1.0):
            raise ValueError(f"variance_threshold must be in (0, 1], got {eps}")
        self.variance_threshold = float(eps)
        _check_int("budget", self.budget, 1, optional=True)
        _check_int("min_tokens", self.min_tokens, 1)
        _check_int("max_tokens", self.max_tokens, 1, optional=True)

    def _resolve_profile_keys(self) -> None:
        """Fill the SVD-Prune keys not given: from the profile's entry for ``task``, else the defaults."""
        unset = [k for k in PROFILE_KEYS if getattr(self, k) is _UNSET]
        values = dict(_PROFILE_DEFAULTS)
        if self.profile is not None:
            if self.method != "svd":
                raise ValueError(f"profile {self.profile!r} gives SVD-Prune settings; it cannot be combined with "
                                 f"method {self.method!r}")
            from adaptive_svdprune.profiles import load_profile

            profile = load_profile(self.profile)
            values.update(profile.config_for(self.task).to_dict())
            split = profile.task(self.task).anyres_split
            if split is not None:
                values["anyres_split"] = split
        for key in unset:
            setattr(self, key, values[key])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        """Build from a config-file dict; unknown keys are an error that names them.

        Example:
            >>> EvalConfig.from_dict({"fidelity": "no"})
            Traceback (most recent call last):
            ...
            TypeError: fidelity must be a bool (true/false), got 'no' (str)
        """
        if not isinstance(data, dict):
            raise _type_error("the evaluation config", data, "a mapping of EvalConfig keys")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ValueError(f"unknown evaluation config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def selector_config(self) -> SelectorConfig:
        """The pruning config this run evaluates (a profile's values already sit in the fields).

        Example:
            >>> EvalConfig(method="l2norm", budget=8).selector_config().to_dict()
            {'method': 'l2norm', 'budget': 8, 'seed': 0, 'fastv_layer': 2}
        """
        if self.method == "svd":
            return SVDPruneConfig(self.variance_threshold, budget=self.budget, min_tokens=self.min_tokens,
                                  max_tokens=self.max_tokens, solver=self.solver,  # type: ignore[arg-type]
                                  center=self.center)
        return config_from_dict({"method": self.method, "budget": self.budget, "seed": self.seed,
                                 "fastv_layer": self.fastv_layer})

    def data_dir(self) -> Path:
        """The data folder, defaulting to the bundled fixtures for the tiny model."""
        from adaptive_svdprune.data import available_tasks

        if self.task not in available_tasks():
            raise ValueError(f"unknown task {self.task!r}; known tasks: {sorted(available_tasks())}")
        from adaptive_svdprune.resources import fixtures_dir, resolve_data

        if self.data is not None:  # the shipped configs' tests/fixtures/<task> also works outside a checkout
            return resolve_data(self.data)
        if self.model == "tiny" and (_REPO_FIXTURES / self.task).exists():
            return _REPO_FIXTURES / self.task
        if self.model == "tiny":
            try:
                return fixtures_dir(self.task)
            except FileNotFoundError:
                pass
        raise ValueError(f"no data folder for task {self.task!r}: pass data (the official download's folder)")


def _check_devices(devices: object) -> int | str:
    """Lightning ``devices``: a positive int, ``"auto"``, ``-1`` (all) or a comma list of device indices.

    Example:
        >>> _check_devices("2"), _check_devices("auto"), _check_devices("0,1")
        (2, 'auto', '0,1')
        >>> _check_devices(0)
        Traceback (most recent call last):
        ...
        ValueError: devices must be a positive int, -1 (all), 'auto' or a comma list of indices like '0,1', got 0
    """
    message = f"devices must be a positive int, -1 (all), 'auto' or a comma list of indices like '0,1', got {devices!r}"
    if isinstance(devices, bool):
        raise TypeError(message)
    if isinstance(devices, str):
        text = devices.strip()
        if text == "auto":
            return text
        if text.lstrip("-").isdigit():
            devices = int(text)
        elif text and all(p.strip().isdigit() for p in text.rstrip(",").split(",")):
            return text
        else:
            raise ValueError(message)
    if not isinstance(devices, int):
        raise TypeError(message)
    if devices == 0 or devices < -1:
        raise ValueError(message)
    return devices
