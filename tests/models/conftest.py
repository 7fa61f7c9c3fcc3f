"""Shared fixtures: the cached tiny LLaVA checkpoint (built once per machine), loaded once per session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from adaptive_svdprune.assets import DEMO_IMAGES, draw_demo_image
from adaptive_svdprune.models.llava import load_llava
from adaptive_svdprune.models.tiny import tiny_llava_path

QUESTIONS = ("What is in the image?", "Describe it.", "How many shapes are there in this picture?", "Color?")


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    return tiny_llava_path()


@pytest.fixture(scope="session")
def tiny(tiny_path: Path) -> tuple[Any, Any]:
    """``(model, processor)``; tests must not modify the model (the no-patching tests check it)."""
    torch.manual_seed(0)
    return load_llava(tiny_path)


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    """Four distinct images: the three demo images and a rotated copy of the first."""
    imgs = [draw_demo_image(name) for name in DEMO_IMAGES]
    return [*imgs, imgs[0].rotate(90)]


@pytest.fixture(scope="session")
def make_inputs(tiny: tuple[Any, Any]) -> Callable[..., dict[str, torch.Tensor]]:
    """``make_inputs(images, questions, images_per_prompt=1)``: processor outputs for LLaVA-1.5 prompts."""
    processor = tiny[1]

    def make(imgs: Sequence[Image.Image], questions: Sequence[str], images_per_prompt: int = 1) -> dict:
        prompts = [f"USER: {'<image>' * images_per_prompt}\n{q} ASSISTANT:" for q in questions]
        return dict(processor(images=list(imgs), text=prompts, return_tensors="pt", padding=True))

    return make


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """Every model test here runs single-threaded (the shared ``one_thread`` fixture)."""
