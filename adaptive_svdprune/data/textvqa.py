"""TextVQA in its official layout: ``DIR/TextVQA_0.5.1_{split}.json`` and ``DIR/train_images/<image_id>.jpg``.

The annotation file is ``{"dataset_type", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [...]}``
with entries ``{"question_id", "image_id", "question", "answers" (10 strings), "ocr_tokens", ...}``; train and
val images both live in ``train_images/`` (the official ``train_val_images.zip``). LLaVA-1.5 reports ``val``.

Example:
    >>> from pathlib import Path
    >>> fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    >>> ds = load_textvqa(fixtures / "textvqa", ocr=True, limit=3)
    >>> ds.protocol, len(ds.samples[0].answers)
    ('llava-1.5/textvqa/ocr', 10)
"""

from __future__ import annotations

from pathlib import Path

from adaptive_svdprune.data._schema import field, question_id, read_json, sample_from_entry
from adaptive_svdprune.data.dataset import VQADataset
from adaptive_svdprune.data.prompts import protocol_name
from adaptive_svdprune.data.records import VQASample

TEXTVQA_VERSION = "0.5.1"
# split -> image folder; the test split has no answers, so it cannot be scored here.
TEXTVQA_IMAGE_DIRS: dict[str, str] = {"train": "train_images", "val": "train_images"}


def textvqa_annotations_path(data_dir: Path | str, split: str = "val") -> Path:
    """``DIR/TextVQA_0.5.1_{split}.json``.

    Example:
        >>> textvqa_annotations_path("tv").as_posix()
        'tv/TextVQA_0.5.1_val.json'
    """
    return Path(data_dir) / f"TextVQA_{TEXTVQA_VERSION}_{split}.json"


def read_textvqa_annotations(path: Path, image_dir: Path, require_ocr: bool = False) -> list[VQASample]:
    """Parse an official TextVQA annotation file into samples (file order), checking every entry.

    Args:
        path: the ``TextVQA_0.5.1_{split}.json`` file.
        image_dir: folder of ``<image_id>.jpg``.
        require_ocr: every entry must carry ``ocr_tokens`` (needed for the OCR protocol).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not JSON, no ``data`` list, or an entry with a missing / wrongly typed key (the message names
            the file, the entry index and question id, and the key).
    """
    root = read_json(path)
    data = field(root, "data", list, where=str(path))
    samples = []
    for i, entry in enumerate(data):
        where = f"{path} data[{i}]"
        qid = question_id(field(entry, "question_id", (str, int), where=where), where=where)
        where = f"{where} (question_id {qid})"
        image_path = image_dir / f"{field(entry, 'image_id', str, where=where)}.jpg"
        samples.append(sample_from_entry(entry, where=where, task="textvqa", qid=qid, image_path=image_path,
                                         ocr="required" if require_ocr else "optional"))
    return samples


def load_textvqa(
    data_dir: Path | str,
    split: str | None = None,
    *,
    limit: int | None = None,
    ocr: bool = False,
    skip_bad: bool = False,
) -> VQADataset:
    """TextVQA dataset from an official-layout folder.

    Args:
        data_dir: folder holding ``TextVQA_0.5.1_{split}.json`` and ``train_images/``.
        split: ``"val"`` (default, LLaVA-1.5's protocol) or ``"train"``.
        ocr: add the dataset's OCR tokens to the prompt (protocol ``llava-1.5/textvqa/ocr``).
        limit, skip_bad: as in :class:`~adaptive_svdprune.data.registry.TaskLoader`.

    Raises:
        FileNotFoundError: the folder or annotation file is missing, or images are (unless ``skip_bad``).
        ValueError: unknown split, or a schema error in the annotation file.
    """
    split = "val" if split is None else split
    if split not in TEXTVQA_IMAGE_DIRS:
        raise ValueError(f"unknown TextVQA split {split!r}; known splits with answers: {sorted(TEXTVQA_IMAGE_DIRS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"TextVQA data_dir is not a folder: {data_dir}")
    path = textvqa_annotations_path(data_dir, split)
    samples = read_textvqa_annotations(path, data_dir / TEXTVQA_IMAGE_DIRS[split], require_ocr=ocr)
    return VQADataset(samples, task="textvqa", protocol=protocol_name("textvqa", split, ocr=ocr), ocr=ocr,
                      skip_bad=skip_bad, limit=limit, source=path)


__all__ = [
    "TEXTVQA_IMAGE_DIRS",
    "TEXTVQA_VERSION",
    "load_textvqa",
    "read_textvqa_annotations",
    "textvqa_annotations_path",
]
