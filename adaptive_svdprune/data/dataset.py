"""``VQADataset``: validated samples of one task, images loaded lazily, bad entries reported or counted.

Missing images are found when the dataset is built: by default one error lists them all; with ``skip_bad=True``
they (and images that fail a quick decode check, and questions whose text holds an image placeholder such as
``<image>``) are skipped and recorded in ``dataset.skipped``. Nothing is dropped silently.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (8, 8), "red").save(root / "a.jpg")
    >>> samples = [VQASample("1", root / "a.jpg", "What color?", ["red"]),
    ...            VQASample("2", root / "gone.jpg", "What color?", ["blue"])]
    >>> ds = VQADataset(samples, task="jsonl", protocol="llava-1.5/jsonl/no-ocr", skip_bad=True)
    >>> len(ds), ds.skipped[0][0], ds[0].image.mode
    (1, '2', 'RGB')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from adaptive_svdprune.data.prompts import format_question
from adaptive_svdprune.data.records import SkippedEntry, VQAExample, VQASample, image_problem, load_image

_MAX_LISTED = 20  # bad entries spelled out in an error message; all of them are on the exception's `.bad`
#: Placeholder tokens of the supported processors: in a question they would make the prompt claim more images.
RESERVED_TOKENS: tuple[str, ...] = ("<image>", "<video>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                    "<|vision_end|>")


class BadImagesError(FileNotFoundError):
    """Some samples point at missing images; ``.bad`` holds every ``(question_id, reason)``."""

    def __init__(self, bad: list[SkippedEntry], total: int, source: str) -> None:
        self.bad = bad
        listed = "\n".join(f"  question {qid}: {reason}" for qid, reason in bad[:_MAX_LISTED])
        more = f"\n  ... and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        super().__init__(
            f"{len(bad)} of {total} samples from {source} have a missing image "
            f"(pass skip_bad=True to skip and count them):\n{listed}{more}"
        )


def check_limit(limit: int | None) -> int | None:
    """Validate ``limit`` (None or a positive int).

    Example:
        >>> check_limit(0)
        Traceback (most recent call last):
        ...
        ValueError: limit must be a positive int or None, got 0
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    return limit


class VQADataset(Dataset[VQAExample]):
    """Map-style dataset of :class:`VQAExample` for one task and protocol.

    Args:
        samples: the records, in file order.
        task: task name stored on the dataset (``"gqa"``, ``"textvqa"``, ``"jsonl"``).
        protocol: protocol string recorded with results (see :func:`~adaptive_svdprune.data.prompts.protocol_name`).
        ocr: put each sample's OCR tokens in the question text (every sample must then have ``ocr_tokens``).
        skip_bad: skip samples whose image is missing or fails a quick decode check, recording them in
            ``skipped``, instead of raising :class:`BadImagesError`.
        limit: keep only the first ``limit`` samples of the file (before skipping, so the subset is the same
            whatever images are present).
        source: file the samples come from, for messages.

    Attributes:
        samples: the usable samples.
        skipped: ``(question_id, reason)`` for every skipped sample.
    """

    def __init__(
        self,
        samples: Sequence[VQASample],
        *,
        task: str,
        protocol: str,
        ocr: bool = False,
        skip_bad: bool = False,
        limit: int | None = None,
        source: Path | str | None = None,
    ) -> None:
        self.task = task
        self.protocol = protocol
        self.ocr = ocr
        self.skip_bad = skip_bad
        self.source = str(source) if source is not None else "<samples>"
        chosen = list(samples)[: check_limit(limit)]
        _check_unique_ids(chosen, self.source)
        if ocr:
            no_ocr = [s.question_id for s in chosen if s.ocr_tokens is None]
            if no_ocr:
                raise ValueError(f"ocr=True but {len(no_ocr)} samples from {self.source} have no OCR tokens "
                                 f"(question ids {no_ocr[:_MAX_LISTED]})")
        self.skipped: list[SkippedEntry] = []
        self.samples: list[VQASample] = self._validate_images(self._validate_text(chosen))

    def _validate_text(self, samples: list[VQASample]) -> list[VQASample]:
        """Questions (or OCR tokens) holding an image placeholder would give the model a second image slot."""
        bad: list[SkippedEntry] = []
        for s in samples:
            text = self.question_text(s)
            token = next((t for t in RESERVED_TOKENS if t in text), None)
            if token is not None:
                bad.append((s.question_id, f"question text contains the reserved token {token!r}"))
        if bad and not self.skip_bad:
            qid, reason = bad[0]
            more = f" ({len(bad) - 1} more)" if len(bad) > 1 else ""
            raise ValueError(f"question {qid} in {self.source}: {reason}{more}; pass skip_bad=True (--skip-bad) "
                             f"to skip and count such questions")
        self.skipped.extend(bad)
        dropped = {qid for qid, _ in bad}
        return [s for s in samples if s.question_id not in dropped]

    def _validate_images(self, samples: list[VQASample]) -> list[VQASample]:
        problems: dict[Path, str | None] = {}
        for s in samples:
            if s.image_path not in problems:  # images are shared by many questions: check each once
                problems[s.image_path] = image_problem(s.image_path, decode=self.skip_bad)
        bad = [(s.question_id, r) for s in samples if (r := problems[s.image_path]) is not None]
        if bad and not self.skip_bad:
            raise BadImagesError(bad, len(samples), self.source)
        self.skipped.extend(bad)
        return [s for s in samples if problems[s.image_path] is None]

    def __len__(self) -> int:
        return len(self.samples)

    def question_text(self, sample: VQASample) -> str:
        """The protocol's question text for ``sample`` (OCR line only when ``ocr=True``)."""
        return format_question(sample.question, sample.ocr_tokens if self.ocr else None)

    def __getitem__(self, index: int) -> VQAExample:
        sample = self.samples[index]
        # A decode failure here raises ValueError naming the file and the question: never dropped silently.
        image = load_image(sample.image_path, sample.question_id)
        return VQAExample(sample=sample, image=image, question_text=self.question_text(sample))

    def __repr__(self) -> str:
        return (f"VQADataset(task={self.task!r}, protocol={self.protocol!r}, samples={len(self)}, "
                f"skipped={len(self.skipped)}, source={self.source!r})")


def _check_unique_ids(samples: list[VQASample], source: str) -> None:
    seen: set[str] = set()
    for s in samples:
        if s.question_id in seen:
            raise ValueError(f"duplicate question id {s.question_id!r} in {source}")
        seen.add(s.question_id)


__all__ = ["RESERVED_TOKENS", "BadImagesError", "VQADataset", "check_limit"]
