"""Task registry: ``load_task(task, data_dir, ...)`` dispatches to the loader registered under the task name.

A new task registers a loader with :func:`register_task`; ``load_task`` itself never changes.

Example:
    >>> available_tasks()
    ['gqa', 'jsonl', 'textvqa']
    >>> load_task("vqav2", "data")
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'vqav2'; known tasks: ['gqa', 'jsonl', 'textvqa']
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from adaptive_svdprune.data.dataset import VQADataset
from adaptive_svdprune.data.gqa import load_gqa
from adaptive_svdprune.data.jsonl import load_jsonl
from adaptive_svdprune.data.textvqa import load_textvqa


class TaskLoader(Protocol):
    """Signature every task loader follows.

    Args:
        data_dir: the task's folder in its official layout.
        split: the task's split; None picks the LLaVA-1.5 protocol's.
        limit: keep the first ``limit`` questions of the file.
        ocr: add the dataset's OCR tokens to the prompt (tasks that ship them).
        skip_bad: skip (and record in ``dataset.skipped``) questions whose image is missing or unreadable,
            instead of raising.
    """

    def __call__(
        self,
        data_dir: Path | str,
        split: str | None = None,
        *,
        limit: int | None = None,
        ocr: bool = False,
        skip_bad: bool = False,
    ) -> VQADataset: ...


_LOADERS: dict[str, TaskLoader] = {"gqa": load_gqa, "textvqa": load_textvqa, "jsonl": load_jsonl}


def register_task(name: str, loader: TaskLoader) -> None:
    """Register ``loader`` under ``name`` (an existing name is an error, to avoid silent replacement)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"task name must be a non-empty str, got {name!r}")
    if name in _LOADERS:
        raise ValueError(f"task {name!r} is already registered")
    _LOADERS[name] = loader


def available_tasks() -> list[str]:
    """Names accepted by :func:`load_task`, sorted."""
    return sorted(_LOADERS)


def load_task(
    task: str,
    data_dir: Path | str,
    split: str | None = None,
    limit: int | None = None,
    ocr: bool = False,
    skip_bad: bool = False,
) -> VQADataset:
    """Build the dataset of ``task`` from ``data_dir`` (official layout, see each loader).

    Args:
        task: ``"gqa"``, ``"textvqa"`` or ``"jsonl"`` (or a registered name).
        data_dir: the task's folder (for ``"jsonl"`` also the ``.jsonl`` file itself).
        split: the task's split; None picks the LLaVA-1.5 protocol's (GQA ``testdev_balanced``, TextVQA ``val``,
            JSONL ``questions.jsonl``).
        limit, ocr, skip_bad: as in :class:`TaskLoader`.

    Raises:
        ValueError: unknown task (the message lists the known ones), bad options or a schema error.
        FileNotFoundError: missing folder, annotation file or images.
    """
    loader = _LOADERS.get(task)
    if loader is None:
        raise ValueError(f"unknown task {task!r}; known tasks: {available_tasks()}")
    return loader(data_dir, split, limit=limit, ocr=ocr, skip_bad=skip_bad)


__all__ = ["TaskLoader", "available_tasks", "load_task", "register_task"]
