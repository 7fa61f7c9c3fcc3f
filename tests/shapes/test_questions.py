"""Question families: every answer is checked against the scene by an independent rule."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_svdprune.metrics import gqa_match, vqa_score
from adaptive_svdprune.shapes.questions import GQA_FAMILIES, gqa_question, sign_question
from adaptive_svdprune.shapes.world import COLOURS, SHAPES, sample_scene

_PLURALS = {"circles": "circle", "squares": "square", "triangles": "triangle", "crosses": "cross"}


def _expected(scene, question: str) -> str:  # type: ignore[no-untyped-def]
    shapes = scene.shapes
    words = question.rstrip("?").split()
    if question.startswith("What color is the"):
        (obj,) = [o for o in shapes if o.shape == words[-1]]
        return obj.colour
    if question.startswith("What shape is the"):
        (obj,) = [o for o in shapes if o.colour == words[-2]]
        return obj.shape
    if question.startswith("Is there a"):
        return "yes" if any(o.colour == words[-2] and o.shape == words[-1] for o in shapes) else "no"
    if question.startswith("How many"):
        return str(sum(o.shape == _PLURALS[words[2]] for o in shapes))
    if question.startswith("Is the"):
        (a,) = [o for o in shapes if f"{o.colour} {o.shape}" == " ".join(words[2:4])]
        (b,) = [o for o in shapes if f"{o.colour} {o.shape}" == " ".join(words[-2:])]
        return "left" if a.centre[0] < b.centre[0] else "right"
    raise AssertionError(question)


@pytest.mark.parametrize("family", [None, *GQA_FAMILIES], ids=["any", *GQA_FAMILIES])
def test_gqa_answers_match_the_scene(family: str | None) -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for i in range(80):
        scene = sample_scene(9, i)
        q = gqa_question(scene, rng, family)
        assert q.answer == _expected(scene, q.question), q
        named = " ".join(scene.objects[i].name for i in q.about)
        if q.family in ("colour", "shape", "relation") or (q.family == "exists" and q.answer == "yes"):
            assert q.about and all(scene.objects[i].shape in q.question or scene.objects[i].colour in q.question
                                   for i in q.about), (q, named)
        if q.family == "count":
            assert len(q.about) == int(q.answer)
        assert gqa_match(q.answer, q.answer) and vqa_score(q.answer, [q.answer] * 10) == 1.0
        seen.add(q.family)
    if family is None:
        assert seen == set(GQA_FAMILIES)
    else:
        assert family in seen


def test_answers_are_balanced_enough() -> None:
    rng = np.random.default_rng(1)
    answers = [gqa_question(sample_scene(2, i), rng, "exists").answer for i in range(200)]
    assert 0.35 < answers.count("yes") / len(answers) < 0.65
    asked = [gqa_question(sample_scene(2, i), rng, f) for i in range(100) for f in ("colour", "shape")]
    assert {q.answer for q in asked if q.family == "colour"} == set(COLOURS)
    assert {q.answer for q in asked if q.family == "shape"} == set(SHAPES)


def test_sign_question_reads_the_word() -> None:
    scene = sample_scene(4, 2, with_sign=True)
    q, ocr = sign_question(scene, np.random.default_rng(0))
    assert scene.sign is not None and q.answer == scene.sign.word and ocr == [scene.sign.word]
    with pytest.raises(ValueError, match="sign"):
        sign_question(sample_scene(4, 2), np.random.default_rng(0))
    with pytest.raises(ValueError, match="family"):
        gqa_question(scene, np.random.default_rng(0), "weather")
