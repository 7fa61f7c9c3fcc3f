"""GQA in its official layout: ``DIR/{split}_questions.json`` and ``DIR/images/<imageId>.jpg``.

The questions file maps question id -> ``{"imageId", "question", "answer", "fullAnswer", "types", "semantic",
...}``; only ``imageId``, ``question`` and ``answer`` are used. LLaVA-1.5 reports GQA on ``testdev_balanced``.

Example:
    >>> from pathlib import Path
    >>> fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    >>> ds = load_gqa(fixtures / "gqa", limit=2)
    >>> ds.protocol, len(ds), ds.samples[0].task
    ('llava-1.5/gqa/testdev-balanced', 2, 'gqa')
"""

from __future__ import annotations

from pathlib import Path

from adaptive_svdprune.data._schema import field, read_json, sample_from_entry
from adaptive_svdprune.data.dataset import VQADataset
from adaptive_svdprune.data.prompts import protocol_name
from adaptive_svdprune.data.records import VQASample

GQA_DEFAULT_SPLIT = "testdev_balanced"


def gqa_questions_path(data_dir: Path | str, split: str = GQA_DEFAULT_SPLIT) -> Path:
    """``DIR/{split}_questions.json``.

    Example:
        >>> gqa_questions_path("gqa").as_posix()
        'gqa/testdev_balanced_questions.json'
    """
    return Path(data_dir) / f"{split}_questions.json"


def read_gqa_questions(path: Path, image_dir: Path) -> list[VQASample]:
    """Parse an official GQA questions file into samples (file order), checking the schema of every entry.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not JSON, not an object of objects, or an entry lacks a key / has a wrongly typed one
            (the message names the file, the question id and the key).
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object mapping question id -> question, "
                         f"got {type(data).__name__}")
    samples = []
    for qid, entry in data.items():
        where = f"{path} entry {qid!r}"
        image_path = image_dir / f"{field(entry, 'imageId', str, where=where)}.jpg"
        samples.append(sample_from_entry(entry, where=where, task="gqa", qid=qid, image_path=image_path,
                                         single_answer=True, ocr="absent"))
    return samples


def load_gqa(
    data_dir: Path | str,
    split: str | None = None,
    *,
    limit: int | None = None,
    ocr: bool = False,
    skip_bad: bool = False,
) -> VQADataset:
    """GQA dataset from an official-layout folder.

    Args:
        data_dir: folder holding ``{split}_questions.json`` and ``images/``.
        split: GQA split file prefix; default ``"testdev_balanced"``.
        limit, skip_bad: as in :class:`~adaptive_svdprune.data.registry.TaskLoader`.
        ocr: must be False: GQA ships no OCR tokens.

    Raises:
        FileNotFoundError: the folder or questions file is missing, or images are (unless ``skip_bad``).
        ValueError: ``ocr=True`` or a schema error in the questions file.
    """
    split = GQA_DEFAULT_SPLIT if split is None else split
    protocol = protocol_name("gqa", split, ocr=ocr)  # raises for ocr=True
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"GQA data_dir is not a folder: {data_dir}")
    path = gqa_questions_path(data_dir, split)
    samples = read_gqa_questions(path, data_dir / "images")
    return VQADataset(samples, task="gqa", protocol=protocol, skip_bad=skip_bad, limit=limit, source=path)


__all__ = ["GQA_DEFAULT_SPLIT", "gqa_questions_path", "load_gqa", "read_gqa_questions"]
