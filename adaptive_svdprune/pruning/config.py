"""Selection configs and the selector registry.

A config says *what* to keep; a handler registered under the config's ``method`` says *how*. Adding a method
registers a handler and never edits the callers (``prune_llava``, the evaluation module, the search).

Example:
    >>> import torch
    >>> selector = make_selector("svd", variance_threshold=0.9, budget=8)
    >>> selector(torch.randn(2, 64, 32)).counts
    [8, 8]
    >>> make_selector("uniform", budget=4)(torch.randn(1, 16, 8)).indices[0].tolist()
    [5, 7, 13, 15]
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal, Union

import torch

from adaptive_svdprune.pruning.selection import TokenSelection

__all__ = [
    "BaselineConfig",
    "SVDPruneConfig",
    "SelectionHandler",
    "Selector",
    "SelectorConfig",
    "available_selectors",
    "config_from_dict",
    "make_selector",
    "register_selector",
    "select_tokens",
]

SolverName = Literal["auto", "svd", "gram", "lowrank"]
SOLVERS: tuple[str, ...] = ("auto", "svd", "gram", "lowrank")


def _check_budget(budget: object, name: str = "budget") -> None:
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"{name} must be a positive int or None, got {budget!r} ({type(budget).__name__})")
    if budget < 1:
        raise ValueError(f"{name} must be a positive int, got {budget}")


@dataclass(frozen=True)
class SVDPruneConfig:
    """Settings of SVD-Prune.

    Args:
        variance_threshold: epsilon in (0, 1]. The rank ``k`` is the smallest one whose singular values explain
            this share of ``||F||_F^2``; in adaptive mode it is also the share of normalised leverage to keep.
        budget: keep exactly this many tokens (top leverage); ``None`` selects adaptively.
        min_tokens: lower clip of the adaptive count.
        max_tokens: upper clip of the adaptive count (``None``: no clip).
        solver: ``"svd"`` (exact thin SVD), ``"gram"`` (eigendecomposition of the smaller Gram matrix),
            ``"lowrank"`` (randomized range finder grown until epsilon is captured) or ``"auto"``.
        center: subtract the per-image token mean before the decomposition (off in the paper).

    Example:
        >>> SVDPruneConfig(variance_threshold=0.8, budget=16).to_dict()["budget"]
        16
        >>> SVDPruneConfig(variance_threshold=1.5)
        Traceback (most recent call last):
        ...
        ValueError: variance_threshold must be in (0, 1], got 1.5
    """

    variance_threshold: float = 0.9
    budget: int | None = None
    min_tokens: int = 1
    max_tokens: int | None = None
    solver: SolverName = "auto"
    center: bool = False

    method: ClassVar[str] = "svd"
    requires: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        eps = self.variance_threshold
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise TypeError(f"variance_threshold must be a float in (0, 1], got {eps!r}")
        if not (math.isfinite(eps) and 0.0 < eps <= 1.0):
            raise ValueError(f"variance_threshold must be in (0, 1], got {eps}")
        object.__setattr__(self, "variance_threshold", float(eps))
        if self.budget is not None:
            _check_budget(self.budget)
        _check_budget(self.min_tokens, "min_tokens")
        if self.max_tokens is not None:
            _check_budget(self.max_tokens, "max_tokens")
            if self.min_tokens > self.max_tokens:
                raise ValueError(f"min_tokens must be <= max_tokens, got {self.min_tokens=} and {self.max_tokens=}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if not isinstance(self.center, bool):
            raise TypeError(f"center must be a bool, got {self.center!r}")

    @property
    def adaptive(self) -> bool:
        """True when the number of kept tokens is chosen per image (``budget is None``)."""
        return self.budget is None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML friendly), with ``method`` so :func:`config_from_dict` can rebuild it."""
        return {"method": self.method, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SVDPruneConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error.

        Example:
            >>> SVDPruneConfig.from_dict({"variance_threshold": 0.8, "budget": None}).adaptive
            True
        """
        data = dict(data)
        method = data.pop("method", cls.method)
        if method != cls.method:
            raise ValueError(f"expected method {cls.method!r}, got {method!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SVDPruneConfig keys {unknown}; known: {sorted(known)}")
        return cls(**data)


BaselineMethod = Literal["none", "random", "uniform", "l2norm", "cls_attention", "fastv"]
BASELINES: tuple[str, ...] = ("none", "random", "uniform", "l2norm", "cls_attention", "fastv")


@dataclass(frozen=True)
class BaselineConfig:
    """A baseline selector with a fixed budget.

    ``none`` keeps every token (the unpruned reference). ``cls_attention`` (VisionZip-style dominant tokens)
    needs the CLS attention of the feature layer, and ``fastv`` prunes inside the language model; both are
    provided by the LLaVA wrapper, which supplies the context they need.

    Example:
        >>> BaselineConfig("random", budget=16, seed=3).to_dict()
        {'method': 'random', 'budget': 16, 'seed': 3, 'fastv_layer': 2}
    """

    method: BaselineMethod = "uniform"
    budget: int | None = 64
    seed: int = 0
    fastv_layer: int = 2

    def __post_init__(self) -> None:
        if self.method not in BASELINES:
            raise ValueError(f"unknown baseline {self.method!r}; known: {BASELINES}")
        if self.method == "none":
            object.__setattr__(self, "budget", None)
        elif self.budget is None:
            raise ValueError(f"baseline {self.method!r} needs a budget (a positive int)")
        else:
            _check_budget(self.budget)
        if self.fastv_layer < 0:
            raise ValueError(f"fastv_layer must be >= 0, got {self.fastv_layer}")

    @property
    def requires(self) -> tuple[str, ...]:
        return ("cls_attention",) if self.method == "cls_attention" else ()

    @property
    def adaptive(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SelectorConfig = Union[SVDPruneConfig, BaselineConfig]  # noqa: UP007 (runtime alias, py3.10)


#: ``handler(features, config, mask=None, **context) -> TokenSelection``
SelectionHandler = Callable[..., TokenSelection]


_HANDLERS: dict[str, SelectionHandler] = {}
# modules whose import registers the built-in handlers
_BUILTIN_MODULES = ("adaptive_svdprune.pruning.svd", "adaptive_svdprune.pruning.baselines")


def register_selector(method: str) -> Callable[[SelectionHandler], SelectionHandler]:
    """Decorator registering ``handler(features, config, mask=None, **context)`` for ``method``."""

    def wrap(handler: SelectionHandler) -> SelectionHandler:
        _HANDLERS[method] = handler
        return handler

    return wrap


def _handlers() -> dict[str, SelectionHandler]:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    return _HANDLERS


def available_selectors() -> list[str]:
    """Names accepted by :func:`make_selector` (``fastv`` runs inside the LLM and is handled by the wrapper)."""
    return sorted({*_handlers(), "fastv"})


def select_tokens(
    features: torch.Tensor, config: SelectorConfig, mask: torch.Tensor | None = None, **context: torch.Tensor
) -> TokenSelection:
    """Run the handler registered for ``config.method`` on ``features`` of shape ``(B, T, D)`` or ``(T, D)``."""
    handlers = _handlers()
    if config.method not in handlers:
        raise ValueError(
            f"no pre-projector selector for method {config.method!r}; known: {sorted(handlers)}"
        )
    missing = [name for name in config.requires if name not in context]
    if missing:
        raise ValueError(f"method {config.method!r} needs {missing} (supplied by prune_llava)")
    return handlers[config.method](features, config, mask=mask, **context)


@dataclass(frozen=True)
class Selector:
    """A config bound to its handler: ``selector(features, mask=None, **context) -> TokenSelection``."""

    config: SelectorConfig

    @property
    def name(self) -> str:
        return self.config.method

    def __call__(
        self, features: torch.Tensor, mask: torch.Tensor | None = None, **context: torch.Tensor
    ) -> TokenSelection:
        return select_tokens(features, self.config, mask=mask, **context)


def config_from_dict(data: Mapping[str, Any]) -> SelectorConfig:
    """Build a config from a dict with a ``method`` key (``"svd"`` when absent).

    Example:
        >>> config_from_dict({"method": "l2norm", "budget": 32})
        BaselineConfig(method='l2norm', budget=32, seed=0, fastv_layer=2)
    """
    data = dict(data)
    method = data.get("method", "svd")
    if method == "svd":
        return SVDPruneConfig.from_dict(data)
    if method not in BASELINES:
        raise ValueError(f"unknown method {method!r}; known: {['svd', *BASELINES]}")
    known = {f.name for f in fields(BaselineConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown keys {unknown} for baseline {method!r}; known: {sorted(known)}")
    return BaselineConfig(**data)


def make_selector(name: str | SelectorConfig, **kwargs: Any) -> Selector:
    """Selector by name (``"svd"``, ``"random"``, ``"uniform"``, ``"l2norm"``, ...) or from a config."""
    if isinstance(name, (SVDPruneConfig, BaselineConfig)):
        if kwargs:
            raise TypeError("pass either a config or a name with keyword arguments, not both")
        return Selector(name)
    return Selector(config_from_dict({"method": name, **kwargs}))
