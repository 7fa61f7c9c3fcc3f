"""FastV inside the language model: two-stage prefill, pruned KV cache, greedy decoding."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch

from adaptive_svdprune.models.llava import prune_llava
from adaptive_svdprune.pruning.config import BaselineConfig

from .conftest import QUESTIONS

NEW = 5


def _new(model: Any, inputs: dict) -> torch.Tensor:
    out = model.generate(**inputs, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False)
    return out[:, inputs["input_ids"].shape[1] :] if out.shape[1] > NEW else out


def test_fastv_keeping_every_token_equals_the_stock_model(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable
) -> None:
    model = tiny[0]
    tokens = model.config.image_seq_length
    inputs = make_inputs(images[:2], QUESTIONS[1:3])
    pruned = prune_llava(model, BaselineConfig("fastv", budget=tokens))
    assert torch.equal(_new(pruned, inputs), _new(model, inputs))
    mask = inputs["attention_mask"]
    with torch.no_grad():
        stock = model(**inputs, position_ids=(mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)).logits
    assert torch.equal(pruned(**inputs).logits, stock)
    assert pruned.last_kept_counts == [tokens, tokens]


@pytest.mark.parametrize("fastv_layer", [1, 2], ids=["K1", "K2"])
def test_layers_after_fastv_layer_see_k_tokens_and_only_their_cache_shrinks(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable, fastv_layer: int
) -> None:
    model = tiny[0]
    tokens, budget = model.config.image_seq_length, 24
    lengths: dict[int, int] = {}
    handles = [
        layer.register_forward_pre_hook(lambda m, args, i=i: lengths.__setitem__(i, args[0].shape[1]))
        for i, layer in enumerate(model.model.language_model.layers)
    ]
    try:
        inputs = make_inputs(images[:1], QUESTIONS[:1])
        full = inputs["input_ids"].shape[1]
        pruned = prune_llava(model, BaselineConfig("fastv", budget=budget, fastv_layer=fastv_layer))
        out = pruned(**inputs)
    finally:
        for h in handles:
            h.remove()
    kept = full - tokens + budget
    n_layers = len(model.model.language_model.layers)
    expected = [full if i < fastv_layer else kept for i in range(n_layers)]
    assert lengths == dict(enumerate(expected))
    # FastV keeps the full KV cache of the first fastv_layer layers; only the later layers hold K image tokens.
    assert [layer.get_seq_length() for layer in out.cache.layers] == expected
    assert out.logits.shape[1] == kept and pruned.last_cache_lengths == [kept]
    assert pruned.last_kept_counts == [budget]


def _causal(n: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.full((n, n), torch.finfo(dtype).min, dtype=dtype).triu(1)[None, None]


def _reference_fastv(
    model: Any, embeds: torch.Tensor, span: tuple[int, int], fastv_layer: int, budget: int, new_tokens: int
) -> list[int]:
    """FastV as its paper describes it, with eager attention and no KV cache (one sample, no padding).

    Every step reruns the whole sequence (prompt + tokens generated so far) layer by layer: layers
    ``[0, fastv_layer)`` see every position; before layer ``fastv_layer`` the image tokens outside the ``budget``
    that received the most attention (head average) from the last prompt token in layer ``fastv_layer - 1`` are
    dropped, and the later layers see the rest with their original positions. The ranking is made once, on the
    prompt, as FastV does in its prefill.
    """
    lm = copy.deepcopy(model.model.language_model)
    lm.config._attn_implementation = "eager"
    captured: list[torch.Tensor] = []
    hook = lm.layers[fastv_layer - 1].self_attn.register_forward_hook(lambda m, a, out: captured.append(out[1]))
    start, length = span
    kept_positions: torch.Tensor | None = None
    sequence, answer = embeds, []
    try:
        with torch.no_grad():
            for _ in range(new_tokens):
                n = sequence.shape[1]
                hidden, positions = sequence, torch.arange(n)[None]
                for i, layer in enumerate(lm.layers):
                    if i == fastv_layer:
                        if kept_positions is None:  # rank once, on the prompt
                            attention = captured[-1][0, :, -1, :].float().mean(dim=0)  # (n,) head average
                            top = torch.topk(attention[start : start + length], budget).indices + start
                            image = torch.zeros(n, dtype=torch.bool)
                            image[start : start + length] = True
                            keep = ~image
                            keep[top] = True
                            kept_positions = keep.nonzero().flatten()
                        rows = torch.cat([kept_positions, torch.arange(embeds.shape[1], n)])
                        hidden, positions = hidden[:, rows], positions[:, rows]
                    cos_sin = lm.rotary_emb(hidden, position_ids=positions)
                    hidden = layer(hidden, attention_mask=_causal(hidden.shape[1], hidden.dtype),
                                   position_embeddings=cos_sin, position_ids=positions)
                token = int(model.lm_head(lm.norm(hidden)[:, -1]).argmax(-1))
                answer.append(token)
                sequence = torch.cat([sequence, model.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
    finally:
        hook.remove()
    return answer


def _stock_embeddings(model: Any, inputs: dict) -> torch.Tensor:
    """The stock model's prompt embeddings: placeholders replaced by the projected image features."""
    with torch.no_grad():
        embeds = model.get_input_embeddings()(inputs["input_ids"])
        features = model.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        features = torch.cat(list(features) if isinstance(features, (list, tuple)) else [features])
        image = (inputs["input_ids"] == model.config.image_token_id).unsqueeze(-1)
        return embeds.masked_scatter(image, features.reshape(-1, embeds.shape[-1]).to(embeds.dtype))


@pytest.mark.parametrize(("fastv_layer", "budget"), [(1, 8), (2, 8), (2, 40), (1, 100)],
                         ids=["K1-R8", "K2-R8", "K2-R40", "K1-R100"])
@pytest.mark.parametrize("sample", [0, 2], ids=["image0", "image2"])
def test_generation_matches_an_eager_reference_fastv(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable, fastv_layer: int, budget: int, sample: int
) -> None:
    model = tiny[0]
    new_tokens = 8
    inputs = make_inputs(images[sample : sample + 1], QUESTIONS[sample : sample + 1])
    ids = inputs["input_ids"][0]
    image_positions = (ids == model.config.image_token_id).nonzero().flatten()
    span = (int(image_positions[0]), int(image_positions.numel()))
    expected = _reference_fastv(model, _stock_embeddings(model, inputs), span, fastv_layer, budget, new_tokens)
    pruned = prune_llava(model, BaselineConfig("fastv", budget=budget, fastv_layer=fastv_layer))
    got = pruned.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    assert got[0].tolist() == expected


def test_ranking_uses_the_last_token_attention_of_layer_k_minus_1(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable
) -> None:
    model = tiny[0]
    fastv_layer, budget = 2, 32
    pruned = prune_llava(model, BaselineConfig("fastv", budget=budget, fastv_layer=fastv_layer))
    inputs = make_inputs(images[:2], QUESTIONS[:2])
    pruned(**inputs)
    prepared, selection = pruned.last_inputs, pruned.last_selection
    assert prepared is not None and selection is not None and selection.method == "fastv"
    eager = copy.deepcopy(model.model.language_model)  # reference attention weights from the eager kernel
    eager.config._attn_implementation = "eager"
    with torch.no_grad():
        attentions = eager(
            inputs_embeds=prepared.inputs_embeds, attention_mask=prepared.attention_mask,
            position_ids=prepared.position_ids, output_attentions=True,
        ).attentions
    last_row = attentions[fastv_layer - 1][:, :, -1, :].float().mean(dim=1)  # (B, L)
    for b, spans in enumerate(prepared.image_spans):
        (start, length), = spans
        expected = last_row[b, start : start + length]
        torch.testing.assert_close(selection.scores[b], expected, atol=1e-6, rtol=1e-4)
        top = torch.sort(expected, descending=True, stable=True).indices[:budget].sort().values
        assert torch.equal(selection.indices[b], top)


def test_fastv_batch_equals_each_sample_alone(tiny: tuple[Any, Any], images: list, make_inputs: Callable) -> None:
    pruned = prune_llava(tiny[0], BaselineConfig("fastv", budget=40))
    inputs = make_inputs(images[1:3], QUESTIONS[1:3])
    batch = _new(pruned, inputs)
    for i in range(2):
        alone = make_inputs(images[1 + i : 2 + i], QUESTIONS[1 + i : 2 + i])
        assert torch.equal(_new(pruned, alone), batch[i : i + 1])


def test_fastv_errors(tiny: tuple[Any, Any], images: list, make_inputs: Callable) -> None:
    model = tiny[0]
    inputs = make_inputs(images[:1], QUESTIONS[:1])
    n = len(model.model.language_model.layers)
    for layer in (0, n):
        with pytest.raises(ValueError, match=f"fastv_layer must be in \\[1, {n - 1}\\].*got {layer}"):
            prune_llava(model, BaselineConfig("fastv", budget=8, fastv_layer=layer)).generate(**inputs)
    pruned = prune_llava(model, BaselineConfig("fastv", budget=8))
    with pytest.raises(ValueError, match="greedy only"):
        pruned.generate(**inputs, do_sample=True)
    with pytest.raises(ValueError, match=r"got \['temperature'\]"):
        pruned.generate(**inputs, temperature=0.7)
