"""The shapes world: procedural VQA scenes in the GQA/TextVQA layouts, and the trained reference model.

- :mod:`~adaptive_svdprune.shapes.world`: seeded scenes (shapes, colours, sizes, word signs on busy
  backgrounds), rendering, per-object patch masks and per-patch classes.
- :mod:`~adaptive_svdprune.shapes.questions`: GQA-style and TextVQA-style question families.
- :mod:`~adaptive_svdprune.shapes.writer`: writes splits in the official layouts plus ``objects.json``.
- :mod:`~adaptive_svdprune.shapes.model`: :func:`shapes_llava_path`, the shipped trained checkpoint.

Example:
    >>> scene = sample_scene(seed=0, index=0, n_objects=1)
    >>> scene.objects[0].shape in SHAPES
    True
"""

from __future__ import annotations

from adaptive_svdprune.shapes.model import shapes_llava_path
from adaptive_svdprune.shapes.questions import GQA_FAMILIES, ShapesQuestion, gqa_question, sign_question
from adaptive_svdprune.shapes.world import (
    COLOURS,
    SHAPES,
    SIZES,
    WORDS,
    Scene,
    SceneObject,
    object_mask,
    patch_classes,
    render_scene,
    sample_scene,
)
from adaptive_svdprune.shapes.writer import WrittenSplit, write_split

__all__ = [
    "COLOURS",
    "GQA_FAMILIES",
    "SHAPES",
    "SIZES",
    "WORDS",
    "Scene",
    "SceneObject",
    "ShapesQuestion",
    "WrittenSplit",
    "gqa_question",
    "object_mask",
    "patch_classes",
    "render_scene",
    "sample_scene",
    "shapes_llava_path",
    "sign_question",
    "write_split",
]
