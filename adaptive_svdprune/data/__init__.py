"""Evaluation data: GQA, TextVQA and generic JSONL sets in one record format, LLaVA-1.5 prompts, collate and a
LightningDataModule.

Example:
    >>> from pathlib import Path
    >>> from adaptive_svdprune.data import load_task
    >>> fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    >>> ds = load_task("textvqa", fixtures / "textvqa", ocr=True)
    >>> ds.protocol, ds.skipped
    ('llava-1.5/textvqa/ocr', [])

``VQADataModule`` is imported on first use (it pulls in Lightning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adaptive_svdprune.data.collate import VQACollator, make_collate
from adaptive_svdprune.data.dataset import BadImagesError, VQADataset
from adaptive_svdprune.data.gqa import load_gqa
from adaptive_svdprune.data.jsonl import load_jsonl
from adaptive_svdprune.data.prompts import (
    SHORT_ANSWER_INSTRUCTION,
    build_prompt,
    format_question,
    protocol_name,
)
from adaptive_svdprune.data.records import VQAExample, VQASample, load_image
from adaptive_svdprune.data.registry import available_tasks, load_task, register_task
from adaptive_svdprune.data.textvqa import load_textvqa

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_svdprune.data.datamodule import VQADataModule


def __getattr__(name: str) -> Any:
    if name == "VQADataModule":
        from adaptive_svdprune.data.datamodule import VQADataModule

        return VQADataModule
    raise AttributeError(f"module 'adaptive_svdprune.data' has no attribute {name!r}")


__all__ = [
    "SHORT_ANSWER_INSTRUCTION",
    "BadImagesError",
    "VQACollator",
    "VQADataModule",
    "VQADataset",
    "VQAExample",
    "VQASample",
    "available_tasks",
    "build_prompt",
    "format_question",
    "load_gqa",
    "load_image",
    "load_jsonl",
    "load_task",
    "load_textvqa",
    "make_collate",
    "protocol_name",
    "register_task",
]
