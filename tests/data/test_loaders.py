"""GQA, TextVQA and JSONL loaders on the committed fixtures: contents, options and schema errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adaptive_svdprune.data import load_gqa, load_jsonl, load_task, load_textvqa
from adaptive_svdprune.data.prompts import SHORT_ANSWER_INSTRUCTION


def test_gqa_fixture(fixtures_dir: Path) -> None:
    ds = load_gqa(fixtures_dir / "gqa")
    assert len(ds) >= 8 and ds.skipped == []
    first = ds.samples[0]
    assert (first.question_id, first.question, first.answers, first.task) == (
        "201307001", "What color is the circle?", ["red"], "gqa")
    assert first.image_path == fixtures_dir / "gqa" / "images" / "n100001.jpg"
    assert first.ocr_tokens is None
    ex = ds[0]
    assert ex.image.mode == "RGB" and ex.image.size == (96, 96)
    assert ex.question_text == f"What color is the circle?\n{SHORT_ANSWER_INSTRUCTION}"


@pytest.mark.parametrize("ocr", [False, True], ids=["no-ocr", "ocr"])
def test_textvqa_fixture(fixtures_dir: Path, ocr: bool) -> None:
    ds = load_textvqa(fixtures_dir / "textvqa", ocr=ocr)
    assert len(ds) >= 8 and all(len(s.answers) == 10 for s in ds.samples)
    s = ds.samples[0]
    assert (s.question_id, s.ocr_tokens, s.task) == ("90001", ["STOP"], "textvqa")
    assert s.image_path.parent.name == "train_images"
    expected_ocr = "\nReference OCR token: STOP" if ocr else ""
    assert ds[0].question_text == f"what does the sign say?{expected_ocr}\n{SHORT_ANSWER_INSTRUCTION}"
    assert ds.protocol == ("llava-1.5/textvqa/ocr" if ocr else "llava-1.5/textvqa/no-ocr")


def test_jsonl_fixture(fixtures_dir: Path) -> None:
    ds = load_jsonl(fixtures_dir / "jsonl")
    assert [s.question_id for s in ds.samples] == ["circles-count", "circles-color", "3", "4"]  # line numbers
    assert ds.samples[2].answers == ["k", "K", "letter k"]
    assert ds.samples[0].image_path == fixtures_dir / "jsonl" / "images" / "three_circles.jpg"
    same = load_jsonl(fixtures_dir / "jsonl" / "questions.jsonl", ocr=True)  # the file itself works too
    assert same.protocol == "llava-1.5/jsonl/ocr"
    assert "Reference OCR token: K\n" in same[2].question_text
    assert "Reference OCR token" not in same[0].question_text  # no tokens -> no OCR line


@pytest.mark.parametrize(
    ("task", "folder", "limit", "protocol"),
    [
        ("gqa", "gqa", None, "llava-1.5/gqa/testdev-balanced"),
        ("textvqa", "textvqa", 3, "llava-1.5/textvqa/no-ocr"),
        ("jsonl", "jsonl", 2, "llava-1.5/jsonl/no-ocr"),
    ],
    ids=["gqa", "textvqa-limit", "jsonl-limit"],
)
def test_load_task(fixtures_dir: Path, task: str, folder: str, limit: int | None, protocol: str) -> None:
    ds = load_task(task, fixtures_dir / folder, limit=limit)
    assert ds.task == task and ds.protocol == protocol
    if limit is not None:
        assert len(ds) == limit


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"task": "vqav2"}, ValueError, r"unknown task 'vqav2'; known tasks: \['gqa', 'jsonl', 'textvqa'\]"),
        ({"task": "gqa", "ocr": True}, ValueError, "task 'gqa' has none"),
        ({"task": "gqa", "limit": 0}, ValueError, "limit must be a positive int"),
        ({"task": "gqa", "split": "val_balanced"}, FileNotFoundError, "val_balanced_questions.json"),
        ({"task": "textvqa", "split": "test"}, ValueError, "unknown TextVQA split 'test'"),
        ({"task": "textvqa", "data_dir": "nowhere"}, FileNotFoundError, "not a folder: nowhere"),
    ],
    ids=["unknown-task", "gqa-ocr", "bad-limit", "missing-split-file", "textvqa-test-split", "missing-dir"],
)
def test_load_task_errors(fixtures_dir: Path, kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    kwargs.setdefault("data_dir", fixtures_dir / kwargs["task"])
    with pytest.raises(error, match=match):
        load_task(**kwargs)


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _drop_key(entry: dict[str, Any], key: str) -> dict[str, Any]:
    entry.pop(key)
    return entry


GQA_FILE = "testdev_balanced_questions.json"
TEXTVQA_FILE = "TextVQA_0.5.1_val.json"


@pytest.mark.parametrize(
    ("task", "filename", "edit", "match"),
    [
        ("gqa", GQA_FILE, lambda d: [d], "expected a JSON object mapping question id"),
        ("gqa", GQA_FILE, lambda d: {**d, "201307003": _drop_key(d["201307003"], "imageId")},
         r"entry '201307003': missing key 'imageId'"),
        ("gqa", GQA_FILE, lambda d: {**d, "201307002": {**d["201307002"], "answer": 3}},
         r"entry '201307002': key 'answer' must be str, got int"),
        ("gqa", GQA_FILE, lambda d: {**d, "x": "not an object"}, r"entry 'x': expected a JSON object"),
        ("textvqa", TEXTVQA_FILE, lambda d: {"questions": d["data"]}, "missing key 'data'"),
        ("textvqa", TEXTVQA_FILE, lambda d: {**d, "data": [*d["data"][:4], _drop_key(d["data"][4], "answers")]},
         r"data\[4\] \(question_id 90005\): missing key 'answers'"),
        ("textvqa", TEXTVQA_FILE, lambda d: {**d, "data": [{**d["data"][0], "answers": "stop"}]},
         r"data\[0\] \(question_id 90001\): key 'answers' must be list"),
        ("textvqa", TEXTVQA_FILE, lambda d: {**d, "data": [{**d["data"][0], "question_id": True}]},
         r"data\[0\]: key 'question_id' must be str or int, got bool"),
    ],
    ids=["gqa-not-object", "gqa-missing-key", "gqa-wrong-type", "gqa-entry-not-object", "textvqa-no-data",
         "textvqa-missing-answers", "textvqa-answers-not-list", "textvqa-bool-id"],
)
def test_schema_errors_name_file_and_key(copy_fixture: Callable[[str], Path], task: str, filename: str,
                                         edit: Callable[[Any], Any], match: str) -> None:
    root = copy_fixture(task)
    _edit_json(root / filename, edit)
    with pytest.raises(ValueError, match=match) as info:
        load_task(task, root)
    assert filename in str(info.value)


def test_textvqa_ocr_requires_tokens(copy_fixture: Callable[[str], Path]) -> None:
    root = copy_fixture("textvqa")
    _edit_json(root / TEXTVQA_FILE, lambda d: {**d, "data": [_drop_key(e, "ocr_tokens") for e in d["data"]]})
    assert load_textvqa(root).samples[0].ocr_tokens is None  # optional without ocr
    with pytest.raises(ValueError, match=r"data\[0\] \(question_id 90001\): missing key 'ocr_tokens'"):
        load_textvqa(root, ocr=True)


@pytest.mark.parametrize("task", ["gqa", "textvqa"], ids=["gqa", "textvqa"])
def test_not_json(copy_fixture: Callable[[str], Path], task: str) -> None:
    root = copy_fixture(task)
    path = root / (GQA_FILE if task == "gqa" else TEXTVQA_FILE)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON") as info:
        load_task(task, root)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{oops", r"questions.jsonl:2 is not valid JSON"),
        ('["a list"]', r"questions.jsonl:2: expected a JSON object, got list"),
        ('{"image": "images/flag.jpg", "question": "q?"}', r"questions.jsonl:2: missing key 'answers'"),
        ('{"image": "images/flag.jpg", "question": "q?", "answers": []}', "must be a non-empty list"),
        ('{"image": "images/flag.jpg", "question": "q?", "answers": ["a", 2]}', "item 1 is int"),
        ('{"image": 7, "question": "q?", "answers": ["a"]}', "key 'image' must be str, got int"),
        ('{"id": 3.5, "image": "images/flag.jpg", "question": "q?", "answers": ["a"]}', "key 'id' must be str"),
    ],
    ids=["not-json", "not-object", "missing-answers", "empty-answers", "non-str-answer", "image-not-str",
         "float-id"],
)
def test_jsonl_line_errors(copy_fixture: Callable[[str], Path], line: str, match: str) -> None:
    root = copy_fixture("jsonl")
    path = root / "questions.jsonl"
    first = path.read_text().splitlines()[0]
    path.write_text(f"{first}\n{line}\n")
    with pytest.raises(ValueError, match=match):
        load_jsonl(root)


def test_jsonl_duplicate_ids_and_blank_lines(copy_fixture: Callable[[str], Path]) -> None:
    root = copy_fixture("jsonl")
    path = root / "questions.jsonl"
    first = path.read_text().splitlines()[0]
    path.write_text(f"{first}\n\n{first}\n")
    with pytest.raises(ValueError, match="duplicate question id 'circles-count'"):
        load_jsonl(root)
