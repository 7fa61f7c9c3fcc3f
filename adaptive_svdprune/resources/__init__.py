"""Files shipped inside the package: ready configs, search spaces and experiment YAMLs, and the demo's data.

Layout (the package holds the canonical copies, so an installed wheel works from any folder)::

    adaptive_svdprune/resources/
        configs/<name>.yaml      eval configs        (== configs/<name>.yaml of the repository)
        search/<name>.yml|json   NNI experiments and search spaces (== search/ of the repository)
        fixtures/<task>/         the tiny GQA/TextVQA/JSONL data of the demo (== tests/fixtures/<task>)

The repository's top-level ``configs/`` and ``search/`` are the copies users read and edit (``nnictl create
--config search/demo.yml`` keeps working); ``tests/test_resources.py`` checks that they equal the packaged ones,
and :func:`sync_from_checkout` copies them over after an edit.

A config is named by path or by name: :func:`resolve_config` takes ``configs/tiny-gqa.yaml`` (an existing
file, used as it is), ``tiny-gqa`` or ``tiny-gqa.yaml`` (looked up in ``./configs/`` first, then in the
package). Relative data paths of the bundled fixtures (``tests/fixtures/gqa``) resolve to the packaged copy
when the current folder does not hold them (:func:`resolve_data`).

Example:
    >>> resolve_config("tiny-gqa", "eval").name
    'tiny-gqa.yaml'
    >>> resolve_config("demo", "search").name
    'demo.yml'
    >>> "demo" in config_names("search")
    True
    >>> resolve_data("tests/fixtures/gqa").is_dir()
    True
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

__all__ = [
    "CONFIG_KINDS",
    "RESOURCES_DIR",
    "ConfigKind",
    "config_names",
    "fixtures_dir",
    "is_packaged",
    "resolve_config",
    "resolve_data",
    "sync_from_checkout",
]

RESOURCES_DIR: Path = Path(__file__).resolve().parent
ConfigKind = Literal["eval", "search"]
#: Config kind -> (folder under the package and in the repository, file suffixes in preference order).
CONFIG_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "eval": ("configs", (".yaml", ".yml")),
    "search": ("search", (".yml", ".yaml")),
}


def _kind(kind: str) -> tuple[str, tuple[str, ...]]:
    if kind not in CONFIG_KINDS:
        raise ValueError(f"config kind must be one of {sorted(CONFIG_KINDS)}, got {kind!r}")
    return CONFIG_KINDS[kind]


def config_names(kind: ConfigKind) -> list[str]:
    """Names of the packaged configs of ``kind`` (``"eval"`` or ``"search"``), sorted."""
    folder, suffixes = _kind(kind)
    return sorted({p.stem for p in (RESOURCES_DIR / folder).iterdir() if p.suffix in suffixes})


def resolve_config(name_or_path: str | os.PathLike[str], kind: ConfigKind) -> Path:
    """The config file meant by ``name_or_path``: an existing file, else a name in ``./<folder>/`` or the package.

    Args:
        name_or_path: a path (``configs/tiny-gqa.yaml``) or a name (``tiny-gqa``, ``tiny-gqa.yaml``).
        kind: ``"eval"`` (``configs/``) or ``"search"`` (``search/``).

    Raises:
        FileNotFoundError: nothing matches; the message lists the packaged names.
    """
    folder, suffixes = _kind(kind)
    given = Path(name_or_path).expanduser()
    if given.is_file():
        return given
    if given.is_dir():
        raise IsADirectoryError(f"{kind} config {str(given)!r} is a folder, not a YAML file")
    if len(given.parts) == 1:  # a bare name: the user's folder first, then the package
        stems = [given.name] if given.suffix in suffixes else [given.name + s for s in suffixes]
        for base in (Path(folder), RESOURCES_DIR / folder):
            for stem in stems:
                if (base / stem).is_file():
                    return base / stem
    raise FileNotFoundError(
        f"{kind} config {str(name_or_path)!r} not found: not a file, nor a packaged name "
        f"({', '.join(config_names(kind))})"
    )


def is_packaged(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies inside the installed package's resources (so its relative paths mean nothing)."""
    try:
        Path(path).resolve().relative_to(RESOURCES_DIR)
    except ValueError:
        return False
    return True


def fixtures_dir(task: str | None = None) -> Path:
    """The packaged fixtures folder (``fixtures/<task>`` when ``task`` is given)."""
    root = RESOURCES_DIR / "fixtures"
    if task is None:
        return root
    if not (root / task).is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"no bundled fixtures for task {task!r}; bundled: {known}")
    return root / task


def resolve_data(path: str | os.PathLike[str]) -> Path:
    """A data path as given, or the packaged fixtures when it names ``.../fixtures/<task>`` that is not here.

    Existing paths always win; only a missing relative path ending in ``fixtures/<task>`` (as the shipped
    configs and search YAMLs write it) is redirected, so a wheel installed elsewhere runs them unchanged.
    """
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute():
        return given
    parts = given.parts
    if len(parts) >= 2 and parts[-2] == "fixtures" and (RESOURCES_DIR / "fixtures" / parts[-1]).exists():
        return RESOURCES_DIR / "fixtures" / parts[-1]
    return given


def sync_from_checkout(root: str | os.PathLike[str]) -> list[Path]:
    """Copy a checkout's ``configs/``, ``search/`` and ``tests/fixtures/<task>/`` into the package; returns them.

    Run after editing the top-level files (``python -c "from adaptive_svdprune.resources import
    sync_from_checkout; sync_from_checkout('.')"``); the resources test says when it is needed.
    """
    root = Path(root)
    written = []
    for folder, suffixes in CONFIG_KINDS.values():
        for src in sorted((root / folder).iterdir()):
            if src.suffix in (*suffixes, ".json"):
                dst = RESOURCES_DIR / folder / src.name
                shutil.copyfile(src, dst)
                written.append(dst)
    for task_dir in sorted((RESOURCES_DIR / "fixtures").iterdir()):
        shutil.copytree(root / "tests" / "fixtures" / task_dir.name, task_dir, dirs_exist_ok=True)
        written.append(task_dir)
    return written
