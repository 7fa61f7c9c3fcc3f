"""A question whose text holds an image placeholder is a bad sample: one clear error, or skipped and counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from adaptive_svdprune.data import VQADataset, VQASample


@pytest.fixture
def samples(tmp_path: Path) -> list[VQASample]:
    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    return [
        VQASample("ok", tmp_path / "a.png", "What color?", ["red"]),
        VQASample("ocr-ok", tmp_path / "a.png", "What color?", ["red"], ocr_tokens=[]),
        VQASample("bad", tmp_path / "a.png", "What is <image> here?", ["red"]),
        VQASample("ocr", tmp_path / "a.png", "What does it say?", ["x"], ocr_tokens=["<image>"]),
    ]


@pytest.mark.parametrize(
    ("ids", "ocr", "bad"),
    [
        pytest.param(["ok", "bad"], False, "bad", id="question"),
        pytest.param(["ocr-ok", "ocr"], True, "ocr", id="ocr-line"),
    ],
)
def test_placeholder_is_an_error_naming_the_question(samples: list[VQASample], ids: list[str], ocr: bool,
                                                     bad: str) -> None:
    chosen = [s for s in samples if s.question_id in ids]
    with pytest.raises(ValueError, match=rf"question {bad} in .*'<image>'.*skip_bad"):
        VQADataset(chosen, task="jsonl", protocol="p", ocr=ocr)


def test_skip_bad_skips_and_counts_placeholder_questions(samples: list[VQASample]) -> None:
    ds = VQADataset([s for s in samples if s.question_id in ("ok", "bad")], task="jsonl", protocol="p", skip_bad=True)
    assert [s.question_id for s in ds.samples] == ["ok"]
    assert ds.skipped == [("bad", "question text contains the reserved token '<image>'")]
