"""Batch building: images + chat-template prompts through the processor, left-padded for generation.

Example:
    >>> class Tok:
    ...     padding_side = "right"
    >>> class Proc:
    ...     tokenizer = Tok()
    >>> collate = make_collate(Proc())
    >>> Proc.tokenizer.padding_side
    'left'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adaptive_svdprune.data.prompts import build_prompt
from adaptive_svdprune.data.records import VQAExample


class VQACollator:
    """Callable turning a list of :class:`VQAExample` into a model-ready batch (a class, so it pickles into
    DataLoader worker processes).

    The batch holds the processor outputs (``input_ids``, ``attention_mask``, ``pixel_values``, plus whatever
    else the processor returns) and, per sample, ``question_ids``, ``answers``, ``prompts`` (the full chat text),
    ``questions`` (raw question) and ``image_paths`` (to reuse per-image work across questions).
    """

    def __init__(self, processor: Any) -> None:
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise TypeError(f"processor must have a .tokenizer (a LlavaProcessor or alike), got "
                            f"{type(processor).__name__}")
        # Batched generation appends new tokens on the right, so prompts must be padded on the left.
        tokenizer.padding_side = "left"
        self.processor = processor

    def __call__(self, examples: Sequence[VQAExample]) -> dict[str, Any]:
        if len(examples) == 0:
            raise ValueError("cannot collate an empty list of examples")
        for i, ex in enumerate(examples):
            if not isinstance(ex, VQAExample):
                raise TypeError(f"examples[{i}] must be a VQAExample (what VQADataset yields), "
                                f"got {type(ex).__name__}")
        prompts = [build_prompt(self.processor, ex.question_text) for ex in examples]
        inputs = self.processor(
            images=[ex.image for ex in examples], text=prompts, return_tensors="pt", padding=True
        )
        batch: dict[str, Any] = dict(inputs)
        batch["question_ids"] = [ex.sample.question_id for ex in examples]
        batch["answers"] = [list(ex.sample.answers) for ex in examples]
        batch["prompts"] = prompts
        batch["questions"] = [ex.sample.question for ex in examples]
        batch["image_paths"] = [str(ex.sample.image_path) for ex in examples]
        return batch


def make_collate(processor: Any) -> VQACollator:
    """A collate function for ``DataLoader(dataset, collate_fn=make_collate(processor))``.

    Sets ``processor.tokenizer.padding_side = "left"`` (needed for batched generation).
    """
    return VQACollator(processor)


__all__ = ["VQACollator", "make_collate"]
