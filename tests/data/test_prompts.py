"""LLaVA-1.5 question text, protocol names and chat-template prompts."""

from __future__ import annotations

import pytest

from adaptive_svdprune.data.prompts import build_prompt, format_question, protocol_name
from tests.data.tiny_processor import LLAVA_LIKE_TEMPLATE, build_tiny_processor


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (None, "what is it?\nAnswer the question using a single word or phrase."),
        ([], "what is it?\nAnswer the question using a single word or phrase."),
        (["cafe", "24h"],
         "what is it?\nReference OCR token: cafe, 24h\nAnswer the question using a single word or phrase."),
    ],
    ids=["no-ocr", "empty-ocr", "ocr"],
)
def test_format_question(tokens: list[str] | None, expected: str) -> None:
    assert format_question("what is it?", tokens) == expected


@pytest.mark.parametrize(
    ("task", "split", "ocr", "expected"),
    [
        ("gqa", None, False, "llava-1.5/gqa/testdev-balanced"),
        ("gqa", "val_balanced", False, "llava-1.5/gqa/val-balanced"),
        ("textvqa", None, True, "llava-1.5/textvqa/ocr"),
        ("textvqa", "val", False, "llava-1.5/textvqa/no-ocr"),
        ("textvqa", "train", True, "llava-1.5/textvqa/ocr@train"),
        ("jsonl", "mine", False, "llava-1.5/jsonl/no-ocr"),
    ],
    ids=["gqa", "gqa-val", "textvqa-ocr", "textvqa-no-ocr", "textvqa-train", "jsonl"],
)
def test_protocol_name(task: str, split: str | None, ocr: bool, expected: str) -> None:
    assert protocol_name(task, split, ocr) == expected


def test_protocol_name_errors() -> None:
    with pytest.raises(ValueError, match="unknown task 'vqa'"):
        protocol_name("vqa")
    with pytest.raises(ValueError, match="task 'gqa' has none"):
        protocol_name("gqa", ocr=True)


def test_build_prompt_template_and_fallback_agree() -> None:
    text = format_question("what color is the circle?")
    templated = build_prompt(build_tiny_processor(LLAVA_LIKE_TEMPLATE), text)
    fallback = build_prompt(build_tiny_processor(), text)
    assert templated == fallback == f"USER: <image>\n{text} ASSISTANT:"


def test_build_prompt_calls_apply_chat_template() -> None:
    calls = []

    class Recorder:
        chat_template = "x"

        def apply_chat_template(self, conversation: list, **kwargs: object) -> str:
            calls.append((conversation, kwargs))
            return "PROMPT"

    assert build_prompt(Recorder(), "q") == "PROMPT"
    conversation, kwargs = calls[0]
    assert conversation == [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}]
    assert kwargs["add_generation_prompt"] is True
