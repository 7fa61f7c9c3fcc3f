"""Write shapes question sets in the official GQA and TextVQA layouts, with an ``objects.json`` beside them.

GQA (``format="gqa"``)::

    DIR/{prefix}_questions.json     question id -> {"imageId", "question", "answer", "fullAnswer", "types", ...}
    DIR/images/<imageId>.jpg

TextVQA (``format="textvqa"``)::

    DIR/TextVQA_0.5.1_{train|val}.json   {"dataset_name": "textvqa", "data": [{question_id, image_id, question,
                                          answers (10), ocr_tokens, ...}]}
    DIR/train_images/<image_id>.jpg

and for both ``DIR/objects.json``: image id -> ``{"objects": [{shape, colour, size, word, bbox, patches}],
"grid": 24, "patch": 14}`` (``patches``: row-major indices ``r * 24 + c`` of the 24x24 grid).

Split names map onto the files the loaders read by default, so ``--task gqa --data DIR`` and ``--task textvqa
--data DIR`` just work on a ``test`` split: GQA ``test`` -> ``testdev_balanced``, ``val`` -> ``val_balanced``,
``train`` -> ``train_balanced``; TextVQA ``test`` and ``val`` -> ``val`` (its loader scores only train/val),
``train`` -> ``train``. Each split draws its own scene stream, so a seed never repeats scenes across splits.

Example:
    >>> import tempfile
    >>> from adaptive_svdprune.data import load_task
    >>> out = write_split(tempfile.mkdtemp(), "gqa", "test", n=4, seed=3)
    >>> len(load_task("gqa", out.root))
    4
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from adaptive_svdprune.shapes.questions import gqa_question, sign_question
from adaptive_svdprune.shapes.world import GRID, PATCH, render_scene, sample_scene

__all__ = ["FORMATS", "GQA_SPLIT_FILES", "SPLITS", "TEXTVQA_SPLIT_FILES", "WrittenSplit", "write_split"]

Format = Literal["gqa", "textvqa"]
Split = Literal["train", "val", "test"]
FORMATS: tuple[str, ...] = ("gqa", "textvqa")
SPLITS: tuple[str, ...] = ("train", "val", "test")
GQA_SPLIT_FILES: dict[str, str] = {"train": "train_balanced", "val": "val_balanced", "test": "testdev_balanced"}
TEXTVQA_SPLIT_FILES: dict[str, str] = {"train": "train", "val": "val", "test": "val"}
GQA_QUESTIONS_PER_IMAGE = 2
# Scene-stream salts: one per (format, split), disjoint from the training script's streams.
_SALTS: dict[tuple[str, str], int] = {(f, s): 10 * (i + 1) + j for i, f in enumerate(FORMATS)
                                      for j, s in enumerate(SPLITS)}
JPEG_QUALITY = 95


@dataclass(frozen=True)
class WrittenSplit:
    """What :func:`write_split` wrote: the folder, the questions file, the objects file and the counts."""

    root: Path
    questions_file: Path
    objects_file: Path
    n_questions: int
    n_images: int


def _check(fmt: str, split: str, n: int, seed: int) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {list(FORMATS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {list(SPLITS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of questions) must be a positive int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _prepare(root: Path, sub: str) -> Path:
    try:
        (root / sub).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create output folder {root / sub}: {err.strerror or err}") from err
    if not os.access(root / sub, os.W_OK):
        raise ValueError(f"output folder is not writable: {root / sub}")
    return root / sub


def _dump(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_split(out: str | os.PathLike[str], fmt: str, split: str = "test", *, n: int = 400,
                seed: int = 0) -> WrittenSplit:
    """Generate ``n`` questions (and their images) of one split and write them in the official layout.

    Args:
        out: output folder (created; existing files of the same split are replaced).
        fmt: ``"gqa"`` (shapes scenes, :data:`GQA_QUESTIONS_PER_IMAGE` questions each) or ``"textvqa"`` (sign
            scenes, one question each).
        split: ``"train"``, ``"val"`` or ``"test"`` (see the module docstring for the file names).
        n: number of questions.
        seed: data seed; the same ``(fmt, split, n, seed)`` writes identical files.

    Raises:
        ValueError: bad ``fmt``/``split``/``n``/``seed``, or ``out`` cannot be created or written.
    """
    _check(fmt, split, n, seed)
    root = Path(out)
    salt = _SALTS[(fmt, split)]
    image_dir = _prepare(root, "images" if fmt == "gqa" else "train_images")
    per_image = GQA_QUESTIONS_PER_IMAGE if fmt == "gqa" else 1
    n_images = math.ceil(n / per_image)
    objects: dict[str, object] = {}
    gqa: dict[str, object] = {}
    textvqa: list[dict[str, object]] = []
    for i in range(n_images):
        scene = sample_scene(seed, i, with_sign=fmt == "textvqa", salt=salt)
        image_id = f"shapes-{fmt}-{split}-s{seed}-{i:06d}"
        render_scene(scene).save(image_dir / f"{image_id}.jpg", quality=JPEG_QUALITY)
        objects[image_id] = {"grid": GRID, "patch": PATCH, "objects": [o.to_dict() for o in scene.objects]}
        rng = np.random.default_rng([seed, salt, i, 1])
        if fmt == "gqa":
            used: set[str] = set()
            for j in range(min(per_image, n - i * per_image)):
                q = gqa_question(scene, rng)
                for _ in range(8):  # prefer different questions about one image
                    if q.question not in used:
                        break
                    q = gqa_question(scene, rng)
                used.add(q.question)
                gqa[f"{image_id}-q{j}"] = {
                    "imageId": image_id, "question": q.question, "answer": q.answer,
                    "fullAnswer": f"{q.answer}.", "types": {"structural": q.family, "semantic": q.family,
                                                            "detailed": q.family},
                    "isBalanced": True, "family": q.family,
                }
        else:
            q, ocr = sign_question(scene, rng)
            textvqa.append({
                "question_id": int(seed * 10**7 + _SALTS[(fmt, split)] * 10**5 + i) if n_images < 10**5 else i,
                "image_id": image_id, "question": q.question, "answers": [q.answer] * 10,
                "ocr_tokens": ocr, "image_width": 336, "image_height": 336, "set_name": TEXTVQA_SPLIT_FILES[split],
                "image_classes": ["sign"], "family": q.family,
            })
    if fmt == "gqa":
        questions_file = root / f"{GQA_SPLIT_FILES[split]}_questions.json"
        _dump(questions_file, gqa)
        count = len(gqa)
    else:
        questions_file = root / f"TextVQA_0.5.1_{TEXTVQA_SPLIT_FILES[split]}.json"
        _dump(questions_file, {"dataset_type": TEXTVQA_SPLIT_FILES[split], "dataset_name": "textvqa",
                               "dataset_version": "0.5.1", "data": textvqa})
        count = len(textvqa)
    objects_file = root / "objects.json"
    previous = json.loads(objects_file.read_text()) if objects_file.is_file() else {}
    previous.update(objects)
    _dump(objects_file, previous)
    return WrittenSplit(root, questions_file, objects_file, count, n_images)
