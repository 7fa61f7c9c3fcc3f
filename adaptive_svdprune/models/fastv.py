"""FastV inside the language model: a two-stage prefill and a greedy decoder over the pruned KV cache.

FastV (Chen et al., 2024) keeps every image token through the first ``fastv_layer`` decoder layers, then keeps
per image the ``budget`` tokens that receive the most attention from the last prompt token and drops the rest
from the later layers. Here the prefill runs in two stages over the instance's own modules (nothing is patched):

1. layers ``[0, fastv_layer)`` on the full sequence, with a KV cache;
2. the attention of the last token in layer ``fastv_layer - 1`` (recomputed from that layer's ``q_proj`` and
   the cached rotary keys, head-averaged) ranks each image's tokens; the others are dropped from the hidden
   states, and layers ``[fastv_layer, N)`` run on the kept positions with their original position ids.

As in the reference implementation, the first ``fastv_layer`` layers keep their **full** KV cache (every image
token) and only the later layers hold the kept positions, in the prefill and in every decoding step: a new token
attends to all image tokens in the early layers and to the kept ones from ``fastv_layer`` on. Decoding therefore
runs the layers itself with one attention mask per part of the cache. Only greedy decoding is provided. The
decoder must be Llama-like (``layers``, ``rotary_emb``, ``norm``, ``embed_tokens``; attention with ``q_proj``,
``scaling``, ``head_dim``, ``num_key_value_groups`` and no ``q_norm``): LLaVA-1.5's Vicuna is, and so is
Qwen2(.5)-VL's Qwen2, whose M-RoPE positions ``(3, B, L)`` are kept for the kept tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FastVPrefill", "fastv_decode", "fastv_prefill", "last_token_attention"]


@dataclass
class FastVPrefill:
    """Result of :func:`fastv_prefill`.

    Attributes:
        hidden_states: ``(B, L', H)`` final-norm hidden states of the kept positions (left padded).
        cache: ``DynamicCache``: layers ``[0, fastv_layer)`` hold all ``L`` prompt positions, the later layers
            the ``L'`` kept ones.
        attention_mask: ``(B, L')`` mask of the kept positions (the cache of layers ``>= fastv_layer``).
        position_ids: ``(B, L')`` (or M-RoPE ``(3, B, L')``) original position ids of the kept positions.
        kept_image_indices: per image, the kept token indices within that image (ascending).
        image_scores: per image, the ``(T,)`` attention its tokens received from the last prompt token.
        full_attention_mask: ``(B, L)`` mask of all prompt positions (the cache of layers ``< fastv_layer``).
        fastv_layer: number of leading layers that keep every image token.
    """

    hidden_states: torch.Tensor
    cache: Any
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    kept_image_indices: list[torch.Tensor]
    image_scores: list[torch.Tensor]
    full_attention_mask: torch.Tensor
    fastv_layer: int


def _check_decoder(lm: Any, fastv_layer: int) -> None:
    if not all(hasattr(lm, a) for a in ("layers", "rotary_emb", "norm", "embed_tokens")):
        raise NotImplementedError(f"FastV needs a Llama-like decoder, got {type(lm).__name__}")
    attn = lm.layers[0].self_attn
    needed = ("q_proj", "scaling", "head_dim", "num_key_value_groups")
    if not all(hasattr(attn, a) for a in needed) or hasattr(attn, "q_norm"):
        raise NotImplementedError(f"FastV needs Llama-style attention, got {type(attn).__name__}")
    n = len(lm.layers)
    if not 1 <= fastv_layer < n:
        raise ValueError(f"fastv_layer must be in [1, {n - 1}] for a {n}-layer language model, got {fastv_layer}")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def last_token_attention(
    layer: Any,
    layer_input: torch.Tensor,
    keys: torch.Tensor,
    cos_sin: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Head-averaged attention weights (float32, ``(B, L)``) of the last position in one decoder layer.

    Args:
        layer: the decoder layer (its ``input_layernorm`` and ``self_attn.q_proj`` are used).
        layer_input: ``(B, L, H)`` hidden states entering the layer.
        keys: ``(B, H_kv, L, d)`` rotary keys that layer cached.
        cos_sin: the rotary ``(cos, sin)`` of the ``L`` positions, each ``(B, L, d)``.
        attention_mask: ``(B, L)`` 2-D padding mask.
    """
    attn = layer.self_attn
    b = layer_input.shape[0]
    x = layer.input_layernorm(layer_input[:, -1:])
    q = attn.q_proj(x).view(b, 1, -1, attn.head_dim).transpose(1, 2)
    cos, sin = (t[:, -1:].unsqueeze(1) for t in cos_sin)
    q = (q * cos + _rotate_half(q) * sin).float()
    k = keys.float().repeat_interleave(attn.num_key_value_groups, dim=1)
    scores = (q @ k.transpose(-1, -2)).squeeze(2) * attn.scaling  # (B, heads, L)
    scores = scores.masked_fill(~attention_mask.bool()[:, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1).mean(dim=1)


def _run_layers(
    lm: Any, layers: range, hidden: torch.Tensor, mask2d: torch.Tensor, position_ids: torch.Tensor, cache: Any
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    from transformers.masking_utils import create_causal_mask

    # M-RoPE positions (3, B, L) (Qwen2-VL): like the stock decoder, rotate with them and pass no text positions.
    text_positions = position_ids if position_ids.dim() == 2 else None
    # The cache is not passed to the mask: the stage that fills it starts from an empty cache for these layers.
    causal = create_causal_mask(
        config=lm.config, inputs_embeds=hidden, attention_mask=mask2d, cache=None, position_ids=text_positions
    )
    cos_sin = lm.rotary_emb(hidden, position_ids=position_ids)
    last_input = hidden
    for i in layers:
        last_input = hidden
        hidden = lm.layers[i](
            hidden, attention_mask=causal, position_embeddings=cos_sin, position_ids=text_positions,
            cache=cache, use_cache=True,
        )
    return hidden, last_input, cos_sin


@torch.no_grad()
def fastv_prefill(
    lm: Any,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    image_spans: list[list[tuple[int, int]]],
    budget: int,
    fastv_layer: int,
) -> FastVPrefill:
    """Two-stage FastV prefill of a left-padded batch (see the module docstring).

    Args:
        lm: the decoder (``model.model.language_model``).
        inputs_embeds: ``(B, L, H)`` prompt embeddings with every image token in place.
        attention_mask: ``(B, L)`` padding mask.
        position_ids: ``(B, L)`` position ids, or M-RoPE ``(3, B, L)`` ones (Qwen2-VL, Qwen2.5-VL).
        image_spans: per prompt, the ``(start, length)`` of each image's tokens, in reading order.
        budget: tokens kept per image from layer ``fastv_layer`` on.
        fastv_layer: number of layers that see every image token.
    """
    from transformers import DynamicCache

    _check_decoder(lm, fastv_layer)
    n_layers = len(lm.layers)
    full_cache: Any = DynamicCache(config=lm.config)
    hidden, last_input, cos_sin = _run_layers(
        lm, range(fastv_layer), inputs_embeds, attention_mask, position_ids, full_cache
    )
    scores = last_token_attention(
        lm.layers[fastv_layer - 1], last_input, full_cache.layers[fastv_layer - 1].keys, cos_sin, attention_mask
    )
    keep_rows, kept_indices, image_scores = [], [], []
    for b, spans in enumerate(image_spans):
        keep = attention_mask[b].bool().clone()
        for start, length in spans:
            span_scores = scores[b, start : start + length]
            order = torch.sort(span_scores, descending=True, stable=True).indices  # ties: lower position
            kept = order[: min(budget, length)].sort().values
            keep[start : start + length] = False
            keep[start + kept] = True
            kept_indices.append(kept.cpu())
            image_scores.append(span_scores.cpu())
        keep_rows.append(keep.nonzero().flatten())
    width = max(int(r.numel()) for r in keep_rows)
    # Left padding: pad slots gather position 0 and are masked out.
    gather = torch.zeros(len(keep_rows), width, dtype=torch.long, device=inputs_embeds.device)
    new_mask = torch.zeros_like(gather)
    for b, rows in enumerate(keep_rows):
        gather[b, width - rows.numel() :] = rows
        new_mask[b, width - rows.numel() :] = 1
    if position_ids.dim() == 3:  # M-RoPE: every kept position keeps its (time, height, width) ids
        rows = gather[None].expand(position_ids.shape[0], -1, -1)
        new_positions = position_ids.gather(2, rows).masked_fill(new_mask[None] == 0, 0)
    else:
        new_positions = position_ids.expand(len(keep_rows), -1).gather(1, gather).masked_fill(new_mask == 0, 0)
    # The first layers keep their full cache (FastV prunes only from fastv_layer on); the later layers fill the
    # same cache object with the kept positions only.
    hidden = hidden.gather(1, gather[:, :, None].expand(-1, -1, hidden.shape[-1]))
    hidden, _, _ = _run_layers(lm, range(fastv_layer, n_layers), hidden, new_mask, new_positions, full_cache)
    return FastVPrefill(lm.norm(hidden), full_cache, new_mask, new_positions, kept_indices, image_scores,
                        attention_mask, fastv_layer)


def _decode_step(
    lm: Any, token: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor], position: torch.Tensor,
    cache: Any, fastv_layer: int,
) -> torch.Tensor:
    """Run one new token through every layer; returns its final-norm hidden state ``(B, H)``."""
    from transformers.masking_utils import create_causal_mask

    hidden = lm.embed_tokens(token[:, None])
    text_positions = position if position.dim() == 2 else None  # M-RoPE: as in _run_layers
    # One mask per part of the cache, each sized against a layer of that part (they hold different lengths).
    early, late = (
        create_causal_mask(config=lm.config, inputs_embeds=hidden, attention_mask=mask, cache=cache,
                           position_ids=text_positions, layer_idx=layer)
        for mask, layer in zip(masks, (0, fastv_layer), strict=True)
    )
    cos_sin = lm.rotary_emb(hidden, position_ids=position)
    for i, layer_module in enumerate(lm.layers):
        hidden = layer_module(
            hidden, attention_mask=early if i < fastv_layer else late, position_embeddings=cos_sin,
            position_ids=text_positions, cache=cache, use_cache=True,
        )
    return lm.norm(hidden)[:, -1]


@torch.no_grad()
def fastv_decode(
    model: Any,
    prefill: FastVPrefill,
    max_new_tokens: int,
    eos_token_id: int | list[int] | None,
    pad_token_id: int,
    min_new_tokens: int = 0,
) -> torch.Tensor:
    """Greedy decoding after :func:`fastv_prefill`; returns the ``(B, N)`` new tokens (pad after EOS).

    Matches ``model.generate(do_sample=False)``: finished rows are filled with ``pad_token_id`` and decoding
    stops when every row has produced an EOS or after ``max_new_tokens``.
    """
    eos = torch.tensor([] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int)
                       else list(eos_token_id), dtype=torch.long, device=prefill.attention_mask.device)
    lm = model.model.language_model
    logits = model.lm_head(prefill.hidden_states[:, -1]).float()
    full_mask, kept_mask, cache = prefill.full_attention_mask, prefill.attention_mask, prefill.cache
    position = prefill.position_ids[..., -1:]
    batch = kept_mask.shape[0]
    unfinished = torch.ones(batch, dtype=torch.bool, device=kept_mask.device)
    out: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        if step < min_new_tokens and eos.numel():
            logits[:, eos] = float("-inf")
        token = logits.argmax(-1)
        token = torch.where(unfinished, token, torch.full_like(token, pad_token_id))
        out.append(token)
        unfinished &= ~torch.isin(token, eos)
        if not unfinished.any() or step + 1 == max_new_tokens:
            break
        full_mask = torch.cat([full_mask, full_mask.new_ones(batch, 1)], dim=1)
        kept_mask = torch.cat([kept_mask, kept_mask.new_ones(batch, 1)], dim=1)
        position = position + 1
        hidden = _decode_step(lm, token, (full_mask, kept_mask), position, cache, prefill.fastv_layer)
        logits = model.lm_head(hidden).float()
    if not out:
        return torch.empty(batch, 0, dtype=torch.long, device=kept_mask.device)
    return torch.stack(out, dim=1)
