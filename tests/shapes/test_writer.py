"""Splits in the official layouts: deterministic, readable by the existing loaders, objects file agrees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_svdprune.data import load_task
from adaptive_svdprune.shapes.world import sample_scene
from adaptive_svdprune.shapes.writer import _SALTS, GQA_SPLIT_FILES, write_split


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["gqa", "textvqa"])
def test_same_seed_writes_identical_files(tmp_path: Path, fmt: str) -> None:
    write_split(tmp_path / "a", fmt, "test", n=6, seed=11)
    write_split(tmp_path / "b", fmt, "test", n=6, seed=11)
    write_split(tmp_path / "c", fmt, "test", n=6, seed=12)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c


def test_gqa_layout_loads_with_the_default_split(tmp_path: Path) -> None:
    written = write_split(tmp_path, "gqa", "test", n=7, seed=2)
    assert written.questions_file.name == "testdev_balanced_questions.json"
    ds = load_task("gqa", tmp_path)  # the loader's default split, no --split needed
    assert len(ds) == 7 == written.n_questions and written.n_images == 4
    example = ds[0]
    assert example.image.size == (336, 336)
    assert example.sample.answers[0] in example.sample.answers
    objects = json.loads(written.objects_file.read_text())
    assert set(objects) == {s.image_path.stem for s in ds.samples}
    # the objects file holds what the scene generator says about each image
    first = objects[ds.samples[0].image_path.stem]
    scene = sample_scene(2, 0, salt=_SALTS[("gqa", "test")])
    assert first["objects"] == [o.to_dict() for o in scene.objects] and first["grid"] == 24


@pytest.mark.parametrize(("split", "file"), [("test", "TextVQA_0.5.1_val.json"), ("train", "TextVQA_0.5.1_train.json")])
def test_textvqa_layout_loads_with_ocr(tmp_path: Path, split: str, file: str) -> None:
    written = write_split(tmp_path, "textvqa", split, n=5, seed=3)
    assert written.questions_file.name == file
    ds = load_task("textvqa", tmp_path, split=None if split == "test" else split, ocr=True)
    assert len(ds) == 5
    sample = ds.samples[0]
    assert len(sample.answers) == 10 and sample.ocr_tokens == [sample.answers[0]]
    assert "Reference OCR token:" in ds[0].question_text


def test_splits_do_not_share_scenes(tmp_path: Path) -> None:
    write_split(tmp_path, "gqa", "train", n=4, seed=0)
    write_split(tmp_path, "gqa", "test", n=4, seed=0)
    train = load_task("gqa", tmp_path, split=GQA_SPLIT_FILES["train"])
    test = load_task("gqa", tmp_path)
    assert train[0].image.tobytes() != test[0].image.tobytes()
    assert len(json.loads((tmp_path / "objects.json").read_text())) == 4  # both splits' images listed


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"fmt": "coco"}, "unknown format"), ({"split": "dev"}, "unknown split"), ({"n": 0}, "positive"),
    ({"seed": -1}, "seed"),
], ids=["format", "split", "n0", "seed"])
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"fmt": "gqa", "split": "test", "n": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        write_split(tmp_path, **args)  # type: ignore[arg-type]
