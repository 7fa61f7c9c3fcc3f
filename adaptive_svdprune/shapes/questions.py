"""Question families about a shapes scene, in the styles of GQA and TextVQA.

GQA-style families (one word answers, scored by exact match):

- ``colour``: "What color is the circle?" (the scene has one circle) -> ``red``
- ``shape``: "What shape is the blue object?" (one blue object) -> ``square``
- ``exists``: "Is there a green triangle?" -> ``yes`` / ``no`` (balanced)
- ``count``: "How many crosses are there?" -> ``0`` .. ``6`` (digits, as the VQA normalisation writes numbers)
- ``relation``: "Is the red circle to the left or to the right of the blue square?" -> ``left`` / ``right``
  (only for pairs whose centres are at least one object apart horizontally)

TextVQA-style family (``sign``): "What does the sign say?" -> the sign's word; the OCR tokens are the words
written in the image.

Example:
    >>> from adaptive_svdprune.shapes.world import sample_scene
    >>> import numpy as np
    >>> q = gqa_question(sample_scene(0, 1), np.random.default_rng(0))
    >>> q.family in GQA_FAMILIES and isinstance(q.answer, str)
    True
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from adaptive_svdprune.shapes.world import COLOURS, SHAPES, Scene, SceneObject

__all__ = ["GQA_FAMILIES", "SIGN_QUESTIONS", "ShapesQuestion", "gqa_question", "question_vocabulary",
           "sign_question"]

#: Family -> sampling weight.
GQA_FAMILIES: dict[str, float] = {"colour": 0.22, "shape": 0.22, "exists": 0.2, "count": 0.14, "relation": 0.22}
SIGN_QUESTIONS: tuple[str, ...] = ("What does the sign say?", "What is written on the sign?",
                                   "What word is on the sign?")
_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
_MIN_DX = 30  # px between centres for a left/right question


@dataclass(frozen=True)
class ShapesQuestion:
    """A question, its one correct answer (already in normalised form) and its family.

    ``about`` holds the indices (into ``scene.objects``) of the objects the answer depends on: the object asked
    about, both objects of a relation, every counted object; empty when no object is (an absent one, a count of 0).
    """

    question: str
    answer: str
    family: str
    about: tuple[int, ...] = ()


def _about(scene: Scene, *objects: SceneObject) -> tuple[int, ...]:
    return tuple(sorted(i for i, o in enumerate(scene.objects) if any(o is x for x in objects)))


def _colour_q(scene: Scene, rng: np.random.Generator) -> ShapesQuestion | None:
    counts = Counter(o.shape for o in scene.shapes)
    unique = [o for o in scene.shapes if counts[o.shape] == 1]
    if not unique:
        return None
    obj = unique[int(rng.integers(len(unique)))]
    return ShapesQuestion(f"What color is the {obj.shape}?", obj.colour, "colour", _about(scene, obj))


def _shape_q(scene: Scene, rng: np.random.Generator) -> ShapesQuestion | None:
    counts = Counter(o.colour for o in scene.shapes)
    unique = [o for o in scene.shapes if counts[o.colour] == 1]
    if not unique:
        return None
    obj = unique[int(rng.integers(len(unique)))]
    return ShapesQuestion(f"What shape is the {obj.colour} object?", obj.shape, "shape", _about(scene, obj))


def _exists_q(scene: Scene, rng: np.random.Generator) -> ShapesQuestion | None:
    present = sorted({(o.colour, o.shape) for o in scene.shapes})
    if rng.random() < 0.5 and present:
        colour, shape = present[int(rng.integers(len(present)))]
        answer = "yes"
    else:
        # "no" questions mostly ask for a near miss (right colour or right shape), so the answer needs both.
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        near = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
        pool = near if near and rng.random() < 0.8 else absent
        colour, shape = pool[int(rng.integers(len(pool)))]
        answer = "no"
    about = _about(scene, *(o for o in scene.shapes if (o.colour, o.shape) == (colour, shape)))
    return ShapesQuestion(f"Is there a {colour} {shape}?", answer, "exists", about)


def _count_q(scene: Scene, rng: np.random.Generator) -> ShapesQuestion | None:
    counts = Counter(o.shape for o in scene.shapes)
    shape = SHAPES[int(rng.integers(len(SHAPES)))] if rng.random() < 0.2 or not counts else \
        sorted(counts)[int(rng.integers(len(counts)))]
    about = _about(scene, *(o for o in scene.shapes if o.shape == shape))
    return ShapesQuestion(f"How many {_PLURAL[shape]} are there?", str(counts[shape]), "count", about)


def _relation_q(scene: Scene, rng: np.random.Generator) -> ShapesQuestion | None:
    names = Counter(o.name for o in scene.shapes)
    objs = [o for o in scene.shapes if names[o.name] == 1]
    pairs = [(a, b) for a in objs for b in objs if a is not b and abs(a.centre[0] - b.centre[0]) >= _MIN_DX]
    if not pairs:
        return None
    a, b = pairs[int(rng.integers(len(pairs)))]
    answer = "left" if a.centre[0] < b.centre[0] else "right"
    question = f"Is the {a.name} to the left or to the right of the {b.name}?"
    return ShapesQuestion(question, answer, "relation", _about(scene, a, b))


_MAKERS = {"colour": _colour_q, "shape": _shape_q, "exists": _exists_q, "count": _count_q,
           "relation": _relation_q}


def gqa_question(scene: Scene, rng: np.random.Generator, family: str | None = None) -> ShapesQuestion:
    """One GQA-style question about ``scene``: ``family`` if given and possible, else drawn by weight among the
    families that have a well-defined answer here (``exists`` and ``count`` always do).

    Raises:
        ValueError: unknown ``family``, or a scene without shapes.
    """
    if family is not None and family not in _MAKERS:
        raise ValueError(f"unknown question family {family!r}; known: {sorted(_MAKERS)}")
    if not scene.shapes:
        raise ValueError("a GQA-style question needs a scene with at least one shape")
    names = list(GQA_FAMILIES)
    weights = np.asarray([GQA_FAMILIES[n] for n in names])
    order = [family] if family else []
    order += [names[i] for i in rng.choice(len(names), size=len(names), replace=False, p=weights / weights.sum())]
    for name in order:
        q = _MAKERS[name](scene, rng)
        if q is not None:
            return q
    raise AssertionError("exists/count always produce a question")  # pragma: no cover


def sign_question(scene: Scene, rng: np.random.Generator) -> tuple[ShapesQuestion, list[str]]:
    """The TextVQA-style question about the scene's sign and the scene's OCR tokens (the words it shows).

    Raises:
        ValueError: the scene has no sign.
    """
    sign = scene.sign
    if sign is None or sign.word is None:
        raise ValueError("a sign question needs a scene with a sign")
    text = SIGN_QUESTIONS[int(rng.integers(len(SIGN_QUESTIONS)))]
    return ShapesQuestion(text, sign.word, "sign", _about(scene, sign)), [o.word for o in scene.objects if o.word]


def question_vocabulary() -> list[str]:
    """Every question text and answer the generator can produce (for training a tokenizer)."""
    from adaptive_svdprune.shapes.world import WORDS

    lines = [f"What color is the {s}?" for s in SHAPES]
    lines += [f"What shape is the {c} object?" for c in COLOURS]
    lines += [f"Is there a {c} {s}?" for c in COLOURS for s in SHAPES]
    lines += [f"How many {p} are there?" for p in _PLURAL.values()]
    lines += [f"Is the {c} {s} to the left or to the right of the {c} {s}?" for c in COLOURS for s in SHAPES]
    lines += list(SIGN_QUESTIONS)
    lines += [*COLOURS, *SHAPES, *WORDS, "yes", "no", "left", "right", *(str(i) for i in range(7))]
    return lines
