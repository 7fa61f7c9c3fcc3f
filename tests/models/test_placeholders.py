"""collapse_image_placeholders / image_placeholder_runs against a plain-Python reference."""

from __future__ import annotations

import pytest
import torch

from adaptive_svdprune.models.placeholders import (
    collapse_image_placeholders,
    image_placeholder_runs,
    images_per_prompt,
)

IMG, PAD = 9, 0


def _reference(rows: list[list[int]], counts: list[int], tokens_per_image: int, side: str) -> list[list[int]]:
    """Collapse in plain Python: every group of ``tokens_per_image`` placeholders becomes ``counts[i]``."""
    out, image = [], 0
    for row in rows:
        new, i = [], 0
        while i < len(row):
            if row[i] == IMG:
                new += [IMG] * counts[image]
                image, i = image + 1, i + tokens_per_image
            else:
                new.append(row[i])
                i += 1
        out.append(new)
    width = max(len(r) for r in out)
    return [([PAD] * (width - len(r)) + r) if side == "left" else (r + [PAD] * (width - len(r))) for r in out]


def _pad(rows: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, r in enumerate(rows):
        span = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[b, span], mask[b, span] = torch.tensor(r), 1
    return ids, mask


ROWS = [
    [1, 5, IMG, IMG, IMG, IMG, 6, 7],  # one image
    [1, IMG, IMG, IMG, IMG, 4, IMG, IMG, IMG, IMG, 8],  # two separated images
    [1, 2, IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG, 3],  # two adjacent images (one run of 8)
]


@pytest.mark.parametrize("out_side", ["left", "right"])
@pytest.mark.parametrize("in_side", ["left", "right"], ids=["in-left", "in-right"])
@pytest.mark.parametrize("counts", [[4, 4, 4, 4, 4], [1, 2, 0, 3, 1], [5, 1, 1, 6, 2]], ids=["same", "fewer", "more"])
def test_collapse_matches_reference(counts: list[int], in_side: str, out_side: str) -> None:
    ids, mask = _pad(ROWS, in_side)
    new_ids, new_mask = collapse_image_placeholders(ids, mask, counts, IMG, PAD, out_side, tokens_per_image=4)
    expected = _reference(ROWS, counts, 4, out_side)
    assert new_ids.tolist() == expected
    assert new_mask.tolist() == [[int(t != PAD) for t in r] for r in expected]
    assert (new_ids == IMG).sum().item() == sum(counts)


def test_collapse_without_mask_and_runs() -> None:
    ids = torch.tensor([ROWS[1]])
    new_ids, new_mask = collapse_image_placeholders(ids, None, [2, 1], IMG, PAD)
    assert new_ids.tolist() == [[1, IMG, IMG, 4, IMG, 8]] and new_mask.all()
    assert image_placeholder_runs(ids[0], IMG) == [(1, 4), (6, 4)]
    assert image_placeholder_runs(torch.tensor(ROWS[2]), IMG) == [(2, 8)]
    assert image_placeholder_runs(torch.tensor(ROWS[2]), IMG, tokens_per_image=4) == [(2, 4), (6, 4)]
    ids, mask = _pad(ROWS, "right")
    assert images_per_prompt(ids, mask, IMG, tokens_per_image=4) == [1, 2, 2]


@pytest.mark.parametrize(
    ("counts", "tokens_per_image", "match"),
    [
        ([4, 4], 4, "hold 5 image placeholder runs .* but 2 images"),
        ([4] * 6, 4, "but 6 images"),
        ([4] * 5, 3, "not a multiple of the 3 placeholders per image"),
        ([4, -1, 4, 4, 4], 4, "counts must be >= 0"),
    ],
    ids=["too-few-counts", "too-many-counts", "bad-run-length", "negative"],
)
def test_collapse_errors(counts: list[int], tokens_per_image: int, match: str) -> None:
    ids, mask = _pad(ROWS, "left")
    with pytest.raises(ValueError, match=match):
        collapse_image_placeholders(ids, mask, counts, IMG, PAD, tokens_per_image=tokens_per_image)


def test_collapse_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="input_ids must be"):
        collapse_image_placeholders(torch.tensor(ROWS[0]), None, [1], IMG, PAD)
    with pytest.raises(ValueError, match="attention_mask shape"):
        collapse_image_placeholders(torch.tensor([ROWS[0]]), torch.ones(1, 3), [1], IMG, PAD)
    with pytest.raises(ValueError, match="padding_side"):
        collapse_image_placeholders(torch.tensor([ROWS[0]]), None, [1], IMG, PAD, padding_side="middle")  # type: ignore[arg-type]
