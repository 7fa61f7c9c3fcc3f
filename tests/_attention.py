"""Independent reference for the attention analyses: the stock model's own ``output_attentions`` forward."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from adaptive_svdprune.data.prompts import build_prompt

__all__ = ["stock_last_row_attention"]


def stock_last_row_attention(
    model: Any, processor: Any, example: Any
) -> tuple[list[torch.Tensor], int, int, np.ndarray]:
    """Head-mean attention of the last prompt position per layer, the image span ``[start, stop)``, and the
    expected instruction / vision / response shares per layer (``(layers, 3)``), no pruning wrapper involved."""
    inputs = processor(images=example.image, text=build_prompt(processor, example.question_text),
                       return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    image = (inputs["input_ids"][0] == model.config.image_token_id).nonzero().flatten()
    start, stop = int(image[0]), int(image[-1]) + 1
    last = [a[0].mean(0)[-1] for a in out.attentions]
    shares = np.asarray([[float(r[:start].sum()), float(r[start:stop].sum()), float(r[stop:].sum())] for r in last])
    return last, start, stop, shares
