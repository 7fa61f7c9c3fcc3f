"""Closed-form FLOPs of a LLaVA architecture: the cross-check of the meta-device counts.

Same convention as ``torch.utils.flop_counter.FlopCounterMode``: only matrix products (linear layers,
the patch convolution, the two attention products) are counted, at 2 FLOPs per multiply-add; norms,
activations, softmax, rotary embeddings and bias additions are not. Attention is counted on the full
``queries x keys`` score matrix, as the SDPA math kernel computes it and the counter counts it, even where
a causal mask makes half of it unused.

With ``n`` positions, hidden size ``d``, ``h`` query heads and ``g`` key/value heads of width ``e``,
MLP width ``m`` and ``V`` vocabulary entries, one decoder layer costs
``n (2dhe + 4dge + 2hed + 6dm) + 4he n_q n_k`` (gated MLP: gate, up and down projections) and the LM head
``2 d V`` per position it is applied to. A CLIP encoder layer over ``n = patches + 1`` positions (CLS) costs
``n (8D^2 + 4DI) + 4 n^2 D`` and the patch embedding ``2 P D C p^2``.
"""

from __future__ import annotations

from typing import Any

from adaptive_svdprune.flops._costs import ComponentCosts

__all__ = ["ANALYTIC_TEXT_MODELS", "ANALYTIC_VISION_MODELS", "analytic_costs"]

#: Decoder families with the Llama layout (q/k/v/o projections and a gated MLP) the formulas describe.
ANALYTIC_TEXT_MODELS: tuple[str, ...] = ("llama", "mistral", "qwen2")
#: Vision towers the formulas describe (ViT with a CLS token and a two-layer MLP).
ANALYTIC_VISION_MODELS: tuple[str, ...] = ("clip_vision_model",)


def _vision_flops(vision: Any) -> int:
    channels = int(getattr(vision, "num_channels", 3))
    patch = int(vision.patch_size)
    patches = (int(vision.image_size) // patch) ** 2
    width, mlp = int(vision.hidden_size), int(vision.intermediate_size)
    positions = patches + 1  # CLS
    patch_embedding = 2 * patches * width * channels * patch * patch
    # HF runs every encoder layer even though vision_feature_layer=-2 only needs all but the last.
    per_layer = positions * (8 * width * width + 4 * width * mlp) + 4 * positions * positions * width
    return patch_embedding + int(vision.num_hidden_layers) * per_layer


def _text_coefficients(text: Any) -> tuple[int, int, int]:
    """(per-position linear FLOPs of all layers, attention FLOPs per query-key pair, LM head per position)."""
    width, heads = int(text.hidden_size), int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or width // heads)
    mlp, layers = int(text.intermediate_size), int(text.num_hidden_layers)
    projections = 2 * width * heads * head_dim + 4 * width * kv_heads * head_dim + 2 * heads * head_dim * width
    linear = layers * (projections + 6 * width * mlp)
    attention = layers * 4 * heads * head_dim
    head = 2 * width * int(text.vocab_size)
    return linear, attention, head


def analytic_costs(config: Any) -> ComponentCosts:
    """Cost coefficients of a LLaVA config from closed-form formulas (see the module docstring).

    Args:
        config: a LLaVA-style config with a CLIP ``vision_config`` and a Llama-family ``text_config``.

    Raises:
        ValueError: for a vision tower or decoder family the formulas do not describe (count those with
            the meta-device counter instead).

    Example:
        >>> from adaptive_svdprune.flops import load_arch_config
        >>> costs = analytic_costs(load_arch_config("llava-1.5-7b"))
        >>> round(costs.vision / 1e9, 1), costs.projector[1] // 2  # GFLOPs; MACs per projected token
        (381.9, 20971520)
    """
    vision_type = getattr(config.vision_config, "model_type", None)
    text_type = getattr(config.text_config, "model_type", None)
    if vision_type not in ANALYTIC_VISION_MODELS or text_type not in ANALYTIC_TEXT_MODELS:
        raise ValueError(
            f"the analytic formulas cover vision {ANALYTIC_VISION_MODELS} and text {ANALYTIC_TEXT_MODELS}, "
            f"got vision {vision_type!r} and text {text_type!r}; use the counted method"
        )
    layers = config.vision_feature_layer
    feature_layers = 1 if isinstance(layers, int) else len(layers)
    vision_width = int(config.vision_config.hidden_size)
    text_width = int(config.text_config.hidden_size)
    projector = 2 * (vision_width * feature_layers * text_width + text_width * text_width)
    linear, attention, head = _text_coefficients(config.text_config)
    return ComponentCosts(
        vision=_vision_flops(config.vision_config),
        projector=(0, projector),
        prefill=(head, linear, attention),
        # a step with L cached positions: one query over L + 1 keys, plus the LM head
        decode=(head + linear + attention, attention),
    )
