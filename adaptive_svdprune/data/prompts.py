"""LLaVA-1.5 evaluation prompts and protocol names (GQA, TextVQA with or without OCR tokens, JSONL).

The question text follows LLaVA-1.5's evaluation files (``llava_gqa_testdev_balanced.jsonl``,
``llava_textvqa_val_v051_ocr.jsonl``)::

    {question}                                  <- as in the dataset, no re-casing
    Reference OCR token: {tok1}, {tok2}, ...    <- TextVQA with ocr=True only
    Answer the question using a single word or phrase.

The chat text around it comes from the processor's chat template (:func:`build_prompt`).

Example:
    >>> print(format_question("what brand is this?", ["nikon", "f2"]))
    what brand is this?
    Reference OCR token: nikon, f2
    Answer the question using a single word or phrase.
    >>> protocol_name("textvqa", "val", ocr=True)
    'llava-1.5/textvqa/ocr'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SHORT_ANSWER_INSTRUCTION = "Answer the question using a single word or phrase."
OCR_LINE_PREFIX = "Reference OCR token: "
# LLaVA-1.5 (vicuna_v1 conversation, as in llava-hf's chat template) when the processor has no chat template.
LLAVA_FALLBACK_TEMPLATE = "USER: {image_token}\n{question} ASSISTANT:"

# The split each task's protocol is defined on; protocol names mention the split only when it differs.
DEFAULT_SPLITS: dict[str, str] = {"gqa": "testdev_balanced", "textvqa": "val", "jsonl": ""}


def format_question(question: str, ocr_tokens: Sequence[str] | None = None) -> str:
    """The question text of the LLaVA-1.5 protocol, with the OCR line when ``ocr_tokens`` is given.

    NOTE: an image without OCR tokens gets no "Reference OCR token:" line at all (rather than an empty one);
    LLaVA-1.5's released file does not settle this case, and an empty line carries no information.

    Example:
        >>> format_question("What color is the circle?")
        'What color is the circle?\\nAnswer the question using a single word or phrase.'
    """
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, got {type(question).__name__}: {question!r}")
    lines = [question]
    if ocr_tokens:
        lines.append(OCR_LINE_PREFIX + ", ".join(ocr_tokens))
    lines.append(SHORT_ANSWER_INSTRUCTION)
    return "\n".join(lines)


def protocol_name(task: str, split: str | None = None, ocr: bool = False) -> str:
    """The evaluation protocol string recorded with results.

    ``llava-1.5/gqa/testdev-balanced``, ``llava-1.5/textvqa/ocr``, ``llava-1.5/textvqa/no-ocr``,
    ``llava-1.5/jsonl/no-ocr``; a TextVQA split other than ``val`` is appended as ``@train``.

    Example:
        >>> protocol_name("gqa"), protocol_name("textvqa", "train")
        ('llava-1.5/gqa/testdev-balanced', 'llava-1.5/textvqa/no-ocr@train')
    """
    if task not in DEFAULT_SPLITS:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(DEFAULT_SPLITS)}")
    split = DEFAULT_SPLITS[task] if split is None else split
    if task == "gqa":
        if ocr:
            raise ValueError("ocr=True needs OCR tokens; task 'gqa' has none (use it with 'textvqa' or 'jsonl')")
        return f"llava-1.5/gqa/{split.replace('_', '-')}"
    name = f"llava-1.5/{task}/{'ocr' if ocr else 'no-ocr'}"
    return name if task == "jsonl" or split == DEFAULT_SPLITS[task] else f"{name}@{split}"


def build_prompt(processor: Any, question_text: str) -> str:
    """The full model input text for one image and one question, via the processor's chat template.

    Calls ``processor.apply_chat_template`` with one user turn (an image, then the text) and the generation
    prompt; falls back to LLaVA-1.5's ``"USER: <image>\\n{q} ASSISTANT:"`` when the processor has no template.

    Example:
        >>> class NoTemplate:
        ...     chat_template = None
        ...     image_token = "<image>"
        >>> build_prompt(NoTemplate(), "Why?")
        'USER: <image>\\nWhy? ASSISTANT:'
    """
    if getattr(processor, "chat_template", None):
        conversation = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question_text}]}
        ]
        text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        if isinstance(text, list):  # some processors return one string per conversation
            text = text[0]
        return str(text)
    image_token = getattr(processor, "image_token", None) or "<image>"
    return LLAVA_FALLBACK_TEMPLATE.format(image_token=image_token, question=question_text)


__all__ = [
    "DEFAULT_SPLITS",
    "LLAVA_FALLBACK_TEMPLATE",
    "OCR_LINE_PREFIX",
    "SHORT_ANSWER_INSTRUCTION",
    "build_prompt",
    "format_question",
    "protocol_name",
]
