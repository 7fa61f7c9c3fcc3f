"""Deployment profiles: the SVD-Prune setting chosen per task for a deployment constraint, as small YAML.

A profile names a deployment (``edge-1.2tflops``), the model it was searched on, and per task the chosen
``variance_threshold``/``budget`` with the accuracy and cost it measured. ``budget: null`` means adaptive.

A profile is a deployment artefact: this module sits just above ``pruning/`` and knows nothing of the search
that produced it (``adaptive_svdprune.tradeoffs.select_for_constraint`` picks the trial; NNI is never needed
to read or write a profile).

Example:
    >>> import tempfile
    >>> profile = Profile("edge", model="llava-hf/llava-1.5-7b-hf",
    ...                   tasks={"gqa": TaskProfile(variance_threshold=0.7, budget=64, tflops=1.0)})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     path = save_profile(profile, f"{out}/edge.yaml")
    ...     config = load_profile(path).config_for("gqa")
    >>> config.variance_threshold, config.budget
    (0.7, 64)
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adaptive_svdprune.profiles.schema import HEADER, parse_profile, profile_to_dict
from adaptive_svdprune.pruning.config import SVDPruneConfig

__all__ = [
    "Profile",
    "TaskProfile",
    "TrialLike",
    "config_kwargs_for",
    "load_profile",
    "save_profile",
]


class TrialLike(Protocol):
    """What :meth:`TaskProfile.from_trial` reads from a search trial (``tradeoffs.TrialResult`` has it)."""

    @property
    def trial_id(self) -> str: ...  # pragma: no cover

    @property
    def parameters(self) -> dict[str, Any]: ...  # pragma: no cover

    @property
    def accuracy(self) -> float: ...  # pragma: no cover

    @property
    def tflops(self) -> float: ...  # pragma: no cover

    @property
    def mean_kept_tokens(self) -> float: ...  # pragma: no cover

    @property
    def variance_threshold(self) -> float | None: ...  # pragma: no cover

    @property
    def budget(self) -> int | None: ...  # pragma: no cover


@dataclass(frozen=True)
class TaskProfile:
    """The chosen SVD-Prune setting for one task and what it measured in the search."""

    variance_threshold: float
    budget: int | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    accuracy: float | None = None
    tflops: float | None = None
    mean_kept_tokens: float | None = None
    trial_id: str | None = None
    experiment: str | None = None
    constraint: str | None = None
    anyres_split: str | None = None  # LLaVA-NeXT/OneVision view split the search chose; None: not searched (global)
    center: bool | None = None  # mean-centred SVD-Prune, when the search tuned it; None: not searched (uncentred)

    @classmethod
    def from_trial(
        cls, trial: TrialLike, constraint: str | None = None, experiment: str | None = None
    ) -> TaskProfile:
        """Profile entry for a search trial (``min_tokens``/``max_tokens`` taken from its parameters if set)."""
        eps = trial.variance_threshold
        if eps is None:
            raise ValueError(f"trial {trial.trial_id} has no variance_threshold in {trial.parameters}")
        params = trial.parameters
        return cls(
            variance_threshold=eps,
            budget=trial.budget,
            min_tokens=None if params.get("min_tokens") is None else int(params["min_tokens"]),
            max_tokens=None if params.get("max_tokens") is None else int(params["max_tokens"]),
            accuracy=trial.accuracy,
            tflops=trial.tflops,
            mean_kept_tokens=trial.mean_kept_tokens,
            trial_id=trial.trial_id,
            experiment=experiment,
            constraint=constraint,
            anyres_split=None if params.get("anyres_split") is None else str(params["anyres_split"]),
            center=None if params.get("center") is None else bool(params["center"]),
        )

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``SVDPruneConfig`` (unset ``min_tokens``/``max_tokens``/``center`` left to its
        defaults)."""
        kwargs: dict[str, Any] = {"variance_threshold": self.variance_threshold, "budget": self.budget}
        if self.min_tokens is not None:
            kwargs["min_tokens"] = self.min_tokens
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.center is not None:
            kwargs["center"] = self.center
        return kwargs


@dataclass
class Profile:
    """A named deployment profile: per-task SVD-Prune settings.

    Args:
        name: profile name (e.g. the deployment target).
        model: model id or path the search ran on.
        deployment: free-form note on the target (device, latency budget, ...).
        created: ISO date of creation (today by default).
        experiments: NNI experiment ids the settings come from.
        tasks: task name -> :class:`TaskProfile`.
    """

    name: str
    model: str | None = None
    deployment: str | None = None
    created: str = field(default_factory=lambda: _dt.date.today().isoformat())
    experiments: list[str] = field(default_factory=list)
    tasks: dict[str, TaskProfile] = field(default_factory=dict)

    def task(self, task: str) -> TaskProfile:
        """The entry for ``task``; ``ValueError`` naming the tasks the profile has when it is missing."""
        if task not in self.tasks:
            raise ValueError(f"profile {self.name!r} has no task {task!r}; it has {sorted(self.tasks)}")
        return self.tasks[task]

    def config_for(self, task: str, **overrides: Any) -> SVDPruneConfig:
        """``SVDPruneConfig`` for ``task``; ``overrides`` (explicit settings such as ``budget``) win.

        Example:
            >>> p = Profile("edge", tasks={"gqa": TaskProfile(variance_threshold=0.8, budget=32)})
            >>> p.config_for("gqa").budget, p.config_for("gqa", budget=64).budget
            (32, 64)
        """
        return SVDPruneConfig(**{**config_kwargs_for(self, task), **overrides})


def config_kwargs_for(profile: Profile, task: str) -> dict[str, Any]:
    """``SVDPruneConfig`` keyword arguments for ``task``: variance_threshold, budget, min/max_tokens if set."""
    return profile.task(task).config_kwargs()


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile YAML file (``FileNotFoundError``/``ValueError`` naming the problem)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"profile not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: malformed YAML: {err}") from None
    meta, tasks = parse_profile(data, str(path))
    return Profile(**meta, tasks={name: TaskProfile(**entry) for name, entry in tasks.items()})


def save_profile(profile: Profile, path: str | Path, merge: bool = True) -> Path:
    """Write ``profile`` as YAML; with ``merge`` an existing file keeps its other tasks.

    Tasks of ``profile`` replace same-named ones in the file; the metadata (name, note, date) is the new
    profile's and the experiment ids are united. Merging profiles of different models is refused.
    """
    import yaml

    path = Path(path)
    if merge and path.exists():
        old = load_profile(path)
        if old.model and profile.model and old.model != profile.model:
            raise ValueError(
                f"{path} holds a profile for model {old.model!r}, not {profile.model!r}; write to another file"
            )
        experiments = list(dict.fromkeys([*old.experiments, *profile.experiments]))
        profile = Profile(
            name=profile.name,
            model=profile.model or old.model,
            deployment=profile.deployment or old.deployment,
            created=profile.created,
            experiments=experiments,
            tasks={**old.tasks, **profile.tasks},
        )
    data = profile_to_dict(profile)
    parse_profile(data, str(path))  # never write what load_profile would reject
    path.parent.mkdir(parents=True, exist_ok=True)
    text = HEADER + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: a crash never leaves half a profile
    return path
