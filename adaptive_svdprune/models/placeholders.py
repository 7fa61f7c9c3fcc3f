"""Collapse the image placeholders of processor-expanded prompts to each image's kept token count.

``LlavaProcessor`` expands every ``<image>`` of a prompt into ``image_seq_length`` (576) placeholder ids. After
pruning, image ``i`` enters the language model with ``K_i`` tokens, so its run of placeholders is shortened
to ``K_i`` and the batch is re-padded. Images map to placeholder runs in reading order (prompt by prompt, left
to right), the order in which ``LlavaModel`` scatters image features.

Example:
    >>> import torch
    >>> ids = torch.tensor([[5, 9, 9, 9, 7], [0, 5, 9, 9, 9]])  # 9 = image placeholder, 0 = pad
    >>> mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    >>> new_ids, new_mask = collapse_image_placeholders(ids, mask, [1, 2], image_token_id=9, pad_token_id=0)
    >>> new_ids.tolist(), new_mask.tolist()
    ([[5, 9, 7], [5, 9, 9]], [[1, 1, 1], [1, 1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

__all__ = ["collapse_image_placeholders", "image_placeholder_runs", "images_per_prompt", "split_runs_by_length"]


def image_placeholder_runs(
    ids: torch.Tensor, image_token_id: int, tokens_per_image: int | None = None
) -> list[tuple[int, int]]:
    """``(start, length)`` of each image's placeholder run in a 1-D id sequence, in order.

    Args:
        ids: 1-D token ids (no padding expected, but pad ids are simply not placeholders).
        image_token_id: the placeholder id.
        tokens_per_image: placeholders per image. When given, a maximal run of placeholders is split into images
            of this length (two ``<image>`` written back to back form one run) and must be a multiple of it;
            when ``None`` every maximal run is one image.

    Example:
        >>> image_placeholder_runs(torch.tensor([1, 9, 9, 2, 9, 9, 9, 9]), 9, tokens_per_image=2)
        [(1, 2), (4, 2), (6, 2)]
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    is_img = (ids == image_token_id).to(torch.int8)
    edges = torch.diff(is_img, prepend=is_img.new_zeros(1), append=is_img.new_zeros(1))
    starts = (edges == 1).nonzero().flatten().tolist()
    ends = (edges == -1).nonzero().flatten().tolist()
    runs: list[tuple[int, int]] = []
    for start, end in zip(starts, ends, strict=True):
        length = end - start
        if tokens_per_image is None:
            runs.append((start, length))
            continue
        if length % tokens_per_image:
            raise ValueError(
                f"a run of {length} image placeholders at position {start} is not a multiple of the "
                f"{tokens_per_image} placeholders per image; were the prompts made by this model's processor?"
            )
        runs += [(s, tokens_per_image) for s in range(start, end, tokens_per_image)]
    return runs


def split_runs_by_length(
    rows: Sequence[torch.Tensor], image_token_id: int, lengths: Sequence[int]
) -> list[list[tuple[int, int]]]:
    """Per row, ``(start, length)`` of each image's placeholders when images have their own lengths.

    Anyres models (LLaVA-NeXT, OneVision) give every image its own placeholder count; images written back to back
    form one run, which is cut by the lengths of the images it holds, in reading order over the whole batch.

    Example:
        >>> split_runs_by_length([torch.tensor([1, 9, 9, 9, 2]), torch.tensor([9, 9, 3])], 9, [1, 2, 2])
        [[(1, 1), (2, 2)], [(0, 2)]]
    """
    lengths = [int(n) for n in lengths]
    out: list[list[tuple[int, int]]] = []
    image = 0
    for b, row in enumerate(rows):
        row_runs: list[tuple[int, int]] = []
        for start, length in image_placeholder_runs(row, image_token_id):
            cursor = start
            while cursor < start + length:
                if image >= len(lengths):
                    raise ValueError(f"the prompts hold more image placeholders than the {len(lengths)} images' "
                                     f"{sum(lengths)}; each image needs its own <image> in the prompt")
                if cursor + lengths[image] > start + length:
                    raise ValueError(
                        f"prompt {b}: a run of {length} image placeholders at position {start} does not fit the "
                        f"images' lengths {lengths[image:]}; were the prompts made by this model's processor "
                        "from these images?"
                    )
                row_runs.append((cursor, lengths[image]))
                cursor += lengths[image]
                image += 1
        out.append(row_runs)
    if image != len(lengths):
        per_prompt = [len(r) for r in out]
        raise ValueError(f"{len(lengths)} images were given but the prompts hold {image} image placeholder runs "
                         f"({per_prompt} per prompt); each image needs its own <image> in the prompt")
    return out


def _valid_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[torch.Tensor]:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        return list(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
        )
    return [row[m.bool()] for row, m in zip(input_ids, attention_mask, strict=True)]


def images_per_prompt(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    image_token_id: int,
    tokens_per_image: int | None = None,
) -> list[int]:
    """Number of images (placeholder runs) in each prompt of a batch.

    Example:
        >>> images_per_prompt(torch.tensor([[9, 9, 1, 9, 9], [1, 1, 1, 9, 9]]), None, 9, tokens_per_image=2)
        [2, 1]
    """
    rows = _valid_rows(input_ids, attention_mask)
    return [len(image_placeholder_runs(r, image_token_id, tokens_per_image)) for r in rows]


def collapse_image_placeholders(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    counts: Sequence[int],
    image_token_id: int,
    pad_token_id: int,
    padding_side: Literal["left", "right"] = "left",
    tokens_per_image: int | Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shorten each image's placeholder run to its kept count and re-pad the batch.

    Args:
        input_ids: ``(B, L)`` processor output (placeholders already expanded), padded on either side.
        attention_mask: ``(B, L)`` with 1 on real tokens, or ``None`` when there is no padding.
        counts: kept token count of every image, in reading order over the whole batch.
        image_token_id: the placeholder id (``model.config.image_token_id``).
        pad_token_id: id written at the new padding positions.
        padding_side: side of the new padding; ``"left"`` for generation.
        tokens_per_image: placeholders per image before collapsing (see :func:`image_placeholder_runs`), or one
            count per image in reading order when they differ (anyres models, see :func:`split_runs_by_length`).

    Returns:
        ``(new_ids, new_mask)`` of shape ``(B, L')`` where ``L'`` is the longest collapsed prompt; ``new_ids``
        has exactly ``counts[i]`` placeholders for image ``i``, in the same places relative to the text.

    Raises:
        ValueError: when the prompts hold a different number of images than ``len(counts)``, or a count is
            negative.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    counts = [int(c) for c in counts]
    if any(c < 0 for c in counts):
        raise ValueError(f"counts must be >= 0, got {counts}")
    rows = _valid_rows(input_ids, attention_mask)
    if tokens_per_image is None or isinstance(tokens_per_image, int):
        runs = [image_placeholder_runs(r, image_token_id, tokens_per_image) for r in rows]
    else:
        runs = split_runs_by_length(rows, image_token_id, tokens_per_image)
    n_runs = sum(len(r) for r in runs)
    if n_runs != len(counts):
        per_prompt = [len(r) for r in runs]
        raise ValueError(
            f"the prompts hold {n_runs} image placeholder runs ({per_prompt} per prompt) but {len(counts)} "
            "images were given; each image needs its own <image> in the prompt"
        )
    new_rows: list[torch.Tensor] = []
    image = 0
    for row, row_runs in zip(rows, runs, strict=True):
        pieces, cursor = [], 0
        for start, length in row_runs:
            pieces.append(row[cursor:start])
            pieces.append(row.new_full((counts[image],), image_token_id))
            cursor, image = start + length, image + 1
        pieces.append(row[cursor:])
        new_rows.append(torch.cat(pieces))
    width = max((r.numel() for r in new_rows), default=0)
    new_ids = input_ids.new_full((len(new_rows), width), pad_token_id)
    new_mask = torch.zeros((len(new_rows), width), dtype=torch.long, device=input_ids.device)
    for b, r in enumerate(new_rows):
        span = slice(width - r.numel(), width) if padding_side == "left" else slice(0, r.numel())
        new_ids[b, span] = r
        new_mask[b, span] = 1
    return new_ids, new_mask
