"""``decoder_attention_rows`` keeps one layer's full attention and every other layer's last row, equal to the full
matrices of ``decoder_attentions``; without eager attention it is the same one clear error."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adaptive_svdprune.analysis.attention import decoder_attention_rows, decoder_attentions
from adaptive_svdprune.assets import draw_demo_image
from adaptive_svdprune.models.families import load_model, prune_model
from adaptive_svdprune.models.names import resolve_model_path
from adaptive_svdprune.pruning.config import BaselineConfig


def _prepared(name: str, **kwargs: Any) -> tuple[Any, Any]:
    model, processor = load_model(resolve_model_path(name), **kwargs)
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=draw_demo_image("scene").resize((120, 90)), text=text, return_tensors="pt")
    return model, prune_model(model, BaselineConfig("none")).prepare_inputs(**inputs)


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen2.5-vl"])
def test_rows_equal_the_full_matrices(name: str) -> None:
    model, p = _prepared(name, attn_implementation="eager")
    full = decoder_attentions(model, p.inputs_embeds, p.attention_mask, p.position_ids)
    rows = decoder_attention_rows(model, p.inputs_embeds, p.attention_mask, p.position_ids, full_layer=1)
    assert len(rows) == len(full)
    for i, (r, f) in enumerate(zip(rows, full, strict=True)):
        expected = f if i == 1 else f[:, :, -1:]
        assert r.shape == expected.shape and torch.allclose(r, expected, atol=1e-6), i


def test_without_eager_attention_is_a_clear_error() -> None:
    model, p = _prepared("tiny", attn_implementation="sdpa")
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        decoder_attention_rows(model, p.inputs_embeds, p.attention_mask, p.position_ids, full_layer=1)
