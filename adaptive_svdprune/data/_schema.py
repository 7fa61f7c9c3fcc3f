"""Schema checks for dataset files: every error names the file, the entry and the key.

Example:
    >>> field({"question": "Why?"}, "question", str, where="f.json entry 'q1'")
    'Why?'
    >>> field({}, "question", str, where="f.json entry 'q1'")
    Traceback (most recent call last):
    ...
    ValueError: f.json entry 'q1': missing key 'question'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from adaptive_svdprune.data.records import VQASample


def read_json(path: Path) -> Any:
    """Parse a JSON file; FileNotFoundError / ValueError name the path.

    Example:
        >>> read_json(Path("/nonexistent/q.json"))
        Traceback (most recent call last):
        ...
        FileNotFoundError: dataset file not found: /nonexistent/q.json
    """
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def field(entry: Any, key: str, kind: type | tuple[type, ...], *, where: str, required: bool = True) -> Any:
    """``entry[key]`` checked to be an instance of ``kind`` (``bool`` never passes for ``int``).

    Returns None for a missing optional key; raises ValueError naming ``where`` and ``key`` otherwise.
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    if key not in entry:
        if required:
            raise ValueError(f"{where}: missing key {key!r}")
        return None
    value = entry[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ValueError(f"{where}: key {key!r} must be {_type_name(kind)}, got {type(value).__name__}: {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def str_list(entry: Any, key: str, *, where: str, required: bool = True, non_empty: bool = False) -> list[str] | None:
    """``entry[key]`` checked to be a list of strings (optionally non-empty); None for a missing optional key.

    Example:
        >>> str_list({"answers": ["a", 1]}, "answers", where="line 3")
        Traceback (most recent call last):
        ...
        ValueError: line 3: key 'answers' must be a list of strings, item 1 is int: 1
    """
    value = field(entry, key, list, where=where, required=required)
    if value is None:
        return None
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{where}: key {key!r} must be a list of strings, item {i} is "
                             f"{type(item).__name__}: {item!r}")
    if non_empty and not value:
        raise ValueError(f"{where}: key {key!r} must be a non-empty list of strings, got []")
    return list(value)


def question_id(value: Any, *, where: str) -> str:
    """A question id (str or int in the official files) as a string.

    Example:
        >>> question_id(34602, where="x")
        '34602'
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{where}: question id must be str or int, got {type(value).__name__}: {value!r}")
    return str(value)


def sample_from_entry(
    entry: Any,
    *,
    where: str,
    task: str,
    qid: str,
    image_path: Path,
    single_answer: bool = False,
    ocr: Literal["absent", "optional", "required"] = "optional",
) -> VQASample:
    """The :class:`VQASample` of one checked dataset entry; every loader builds its records here.

    Args:
        entry: the entry's JSON object (``question``, then ``answer`` or ``answers``, maybe ``ocr_tokens``).
        where: the entry's location, named in every error (file, index or line, question id).
        task: the task the sample belongs to.
        qid: the question id, already read from the entry (its key differs between formats).
        image_path: the entry's image file.
        single_answer: GQA-style ``answer`` string instead of an ``answers`` list.
        ocr: ``ocr_tokens`` is not read (``"absent"``), read when present, or required.

    Example:
        >>> s = sample_from_entry({"question": "Color?", "answer": "red"}, where="q.json entry 'q1'", task="gqa",
        ...                       qid="q1", image_path=Path("images/1.jpg"), single_answer=True, ocr="absent")
        >>> s.answers, s.ocr_tokens
        (['red'], None)
    """
    if single_answer:
        answers = [field(entry, "answer", str, where=where)]
    else:
        answers = str_list(entry, "answers", where=where, non_empty=True) or []
    tokens = None if ocr == "absent" else str_list(entry, "ocr_tokens", where=where, required=ocr == "required")
    return VQASample(question_id=qid, image_path=image_path, question=field(entry, "question", str, where=where),
                     answers=answers, ocr_tokens=tokens, task=task)
