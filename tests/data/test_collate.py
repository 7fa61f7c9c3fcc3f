"""Collate with a tiny real LlavaProcessor, and the LightningDataModule's ordered loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import SequentialSampler
from transformers import LlavaProcessor

from adaptive_svdprune.data import VQADataModule, load_task, make_collate
from tests.data.tiny_processor import IMAGE_TOKEN, build_tiny_processor


@pytest.fixture(scope="module")
def processor() -> LlavaProcessor:
    return build_tiny_processor()


@pytest.mark.parametrize(("task", "ocr"), [("gqa", False), ("textvqa", True)], ids=["gqa", "textvqa-ocr"])
def test_collate_batch(processor: LlavaProcessor, fixtures_dir: Path, task: str, ocr: bool) -> None:
    ds = load_task(task, fixtures_dir / task, ocr=ocr, limit=3)
    collate = make_collate(processor)
    assert processor.tokenizer.padding_side == "left"
    batch = collate([ds[i] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 3, 336, 336)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["question_ids"] == [s.question_id for s in ds.samples]
    assert batch["answers"] == [s.answers for s in ds.samples]
    assert batch["image_paths"] == [str(s.image_path) for s in ds.samples]
    assert all(p.startswith("USER: <image>\n") and p.endswith(" ASSISTANT:") for p in batch["prompts"])
    if ocr:
        assert "Reference OCR token: STOP" in batch["prompts"][0]
    # every row holds the full set of image placeholders (24 x 24 patches for a 336 crop, patch 14)
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert (batch["input_ids"] == image_id).sum(dim=1).tolist() == [576] * 3
    # left padding: the padding (mask 0) precedes the tokens, and the last column is real for every row
    mask = batch["attention_mask"]
    assert bool(mask[:, -1].all())
    assert torch.equal(mask, mask.cummax(dim=1).values)
    assert bool((mask == 0).any())  # the questions differ in length, so padding happened


def test_collate_rejects_bad_input(processor: LlavaProcessor) -> None:
    collate = make_collate(processor)
    with pytest.raises(ValueError, match="empty"):
        collate([])
    with pytest.raises(TypeError, match=r"examples\[0\] must be a VQAExample"):
        collate([{"image": None}])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"must have a \.tokenizer"):
        make_collate(object())


def test_datamodule_loaders_are_ordered(processor: LlavaProcessor, fixtures_dir: Path) -> None:
    dm = VQADataModule("textvqa", fixtures_dir / "textvqa", processor, batch_size=4, ocr=True)
    assert dm.protocol == "llava-1.5/textvqa/ocr"
    assert dm.dataset is not None
    for loader in (dm.test_dataloader(), dm.predict_dataloader()):
        assert isinstance(loader.sampler, SequentialSampler)
        ids = [qid for batch in loader for qid in batch["question_ids"]]
        assert ids == [s.question_id for s in dm.dataset.samples]
        assert len(loader) == 3  # 10 questions, batches of 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"batch_size": 0}, "batch_size must be a positive int"), ({"num_workers": -1}, "num_workers must be"),
     ({"limit": -2}, "limit must be a positive int")],
    ids=["batch-size", "num-workers", "limit"],
)
def test_datamodule_bad_args(
    processor: LlavaProcessor, fixtures_dir: Path, kwargs: dict[str, int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        VQADataModule("gqa", fixtures_dir / "gqa", processor, **kwargs)
