"""Image validation: missing images listed up front, skip_bad counts, decode failures name the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptive_svdprune.data import BadImagesError, VQADataset, VQASample, load_image, load_task

IMAGE_DIRS = {"gqa": "images", "textvqa": "train_images", "jsonl": "images"}
# image file -> questions that use it, per fixture
BROKEN = {"gqa": ("n100001.jpg", 3), "textvqa": ("a1f0c2e4b6d80002.jpg", 2), "jsonl": ("three_circles.jpg", 2)}


@pytest.mark.parametrize("task", ["gqa", "textvqa", "jsonl"], ids=["gqa", "textvqa", "jsonl"])
def test_missing_images_listed_up_front(copy_fixture: Callable[[str], Path], task: str) -> None:
    root = copy_fixture(task)
    name, n_questions = BROKEN[task]
    (root / IMAGE_DIRS[task] / name).unlink()
    with pytest.raises(BadImagesError, match=f"{n_questions} of .* missing image") as info:
        load_task(task, root)
    assert len(info.value.bad) == n_questions
    assert all(name in reason for _, reason in info.value.bad)
    assert "skip_bad=True" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("task", ["gqa", "textvqa", "jsonl"], ids=["gqa", "textvqa", "jsonl"])
def test_skip_bad_counts_missing_and_corrupt(copy_fixture: Callable[[str], Path], task: str) -> None:
    root = copy_fixture(task)
    full = load_task(task, root)
    name, n_missing = BROKEN[task]
    (root / IMAGE_DIRS[task] / name).unlink()
    corrupt = next(p for p in sorted((root / IMAGE_DIRS[task]).iterdir()) if p.name != name)
    n_corrupt = sum(s.image_path.name == corrupt.name for s in full.samples)
    corrupt.write_bytes(b"this is not a jpeg")
    ds = load_task(task, root, skip_bad=True)
    assert len(ds) + len(ds.skipped) == len(full)
    reasons = [r for _, r in ds.skipped]
    assert sum(r.startswith("missing:") for r in reasons) == n_missing
    assert sum(r.startswith("unreadable:") for r in reasons) == n_corrupt
    assert all(s.image_path.name not in (name, corrupt.name) for s in ds.samples)
    assert [ds[i].sample for i in range(len(ds))] == ds.samples


def test_decode_failure_at_load_time_names_file(copy_fixture: Callable[[str], Path]) -> None:
    root = copy_fixture("gqa")
    ds = load_task("gqa", root)  # only existence is checked at build time without skip_bad
    path = root / "images" / "n100001.jpg"
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match=r"cannot decode image .*n100001\.jpg \(question 201307001\)"):
        ds[0]


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image file not found"):
        load_image(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.png"
    bad.write_text("png? no")
    with pytest.raises(ValueError, match=r"cannot decode image .*bad\.png"):
        load_image(bad)


def test_ocr_needs_tokens_on_every_sample(tmp_path: Path) -> None:
    samples = [VQASample("1", tmp_path / "a.jpg", "q?", ["a"], ocr_tokens=None)]
    with pytest.raises(ValueError, match=r"ocr=True but 1 samples .* no OCR tokens"):
        VQADataset(samples, task="jsonl", protocol="p", ocr=True)


def test_many_missing_images_message_is_truncated(tmp_path: Path) -> None:
    samples = [VQASample(str(i), tmp_path / f"{i}.jpg", "q?", ["a"]) for i in range(30)]
    with pytest.raises(BadImagesError, match=r"(?s)30 of 30 samples .*\.\.\. and 10 more") as info:
        VQADataset(samples, task="jsonl", protocol="p", source="x.jsonl")
    assert len(info.value.bad) == 30
