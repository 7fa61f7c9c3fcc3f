"""A generic JSONL question set: one JSON object per line.

Each line: ``{"image": "<path relative to the .jsonl file>", "question": "...", "answers": ["...", ...]}`` with
optional ``"id"`` (str or int; default: the line number) and ``"ocr_tokens"`` (list of strings). Blank lines
are ignored.

Example:
    >>> fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    >>> ds = load_jsonl(fixtures / "jsonl")
    >>> ds.protocol, ds.samples[0].task
    ('llava-1.5/jsonl/no-ocr', 'jsonl')
"""

from __future__ import annotations

import json
from pathlib import Path

from adaptive_svdprune.data._schema import field, question_id, sample_from_entry
from adaptive_svdprune.data.dataset import VQADataset
from adaptive_svdprune.data.prompts import protocol_name
from adaptive_svdprune.data.records import VQASample

JSONL_DEFAULT_NAME = "questions"


def jsonl_path(data_dir: Path | str, split: str | None = None) -> Path:
    """The JSONL file: ``data_dir`` itself when it is a file, else ``data_dir/{split or "questions"}.jsonl``.

    Example:
        >>> jsonl_path("no/such/folder").as_posix()
        'no/such/folder/questions.jsonl'
    """
    data_dir = Path(data_dir)
    if data_dir.is_file():
        return data_dir
    return data_dir / f"{split or JSONL_DEFAULT_NAME}.jsonl"


def read_jsonl_questions(path: Path) -> list[VQASample]:
    """Parse a JSONL question file into samples (file order), checking every line.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a line is not JSON, not an object, or has a missing / wrongly typed key (the message names
            the file, the line number and the key).
    """
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    samples = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where} is not valid JSON: {err}") from err
            raw_id = field(entry, "id", (str, int), where=where, required=False)
            qid = str(lineno) if raw_id is None else question_id(raw_id, where=where)
            image_path = path.parent / field(entry, "image", str, where=where)
            samples.append(sample_from_entry(entry, where=where, task="jsonl", qid=qid, image_path=image_path))
    return samples


def load_jsonl(
    data_dir: Path | str,
    split: str | None = None,
    *,
    limit: int | None = None,
    ocr: bool = False,
    skip_bad: bool = False,
) -> VQADataset:
    """Dataset from a generic JSONL file (or a folder holding ``{split}.jsonl``, default ``questions.jsonl``).

    Args:
        data_dir: the ``.jsonl`` file, or its folder.
        split: file stem inside the folder; ignored when ``data_dir`` is a file.
        ocr: add each line's ``ocr_tokens`` to the prompt (every line must then have them).
        limit, skip_bad: as in :class:`~adaptive_svdprune.data.registry.TaskLoader`.
    """
    path = jsonl_path(data_dir, split)
    samples = read_jsonl_questions(path)
    return VQADataset(samples, task="jsonl", protocol=protocol_name("jsonl", ocr=ocr), ocr=ocr,
                      skip_bad=skip_bad, limit=limit, source=path)


__all__ = ["JSONL_DEFAULT_NAME", "jsonl_path", "load_jsonl", "read_jsonl_questions"]
