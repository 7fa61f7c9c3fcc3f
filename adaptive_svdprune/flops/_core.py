"""Per-sample FLOPs and KV-cache accounting of pruned LLaVA inference.

One sample is one image and one prompt: the vision tower runs on all patches, the selector keeps K of the
T image tokens, the projector maps the K kept tokens, the language model prefills ``prompt_tokens + K``
positions and then decodes. FLOPs follow ``FlopCounterMode`` (2 per multiply-add of the matrix products).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Literal

from adaptive_svdprune.flops._analytic import analytic_costs
from adaptive_svdprune.flops._anyres import DEFAULT_ANYRES_IMAGE_SIZE, anyres_geometry, is_anyres
from adaptive_svdprune.flops._archs import image_token_count, load_arch_config
from adaptive_svdprune.flops._costs import ComponentCosts
from adaptive_svdprune.flops._counted import counted_costs
from adaptive_svdprune.flops._selection import SELECTION_SOLVERS, selection_flops

__all__ = [
    "DEFAULT_NEW_TOKENS",
    "DEFAULT_PROMPT_TOKENS",
    "DTYPE_BYTES",
    "FlopsBreakdown",
    "batch_flops",
    "count_flops",
    "kv_cache_bytes",
]

#: Text tokens of the prompt around the image: the LLaVA-1.5 GQA template is 52 Llama tokens (BOS, system
#: prompt and "USER:" = 35; "\n", the short-answer instruction and " ASSISTANT:" = 17) plus a 5-token
#: question. With :data:`DEFAULT_NEW_TOKENS` this reproduces the paper's 84.8% at 16 tokens on LLaVA-1.5-7B
#: (84.83%); any prompt of 54-60 tokens stays within 0.3 points of it. See the README for the derivation.
DEFAULT_PROMPT_TOKENS = 57
#: Generated tokens: one, the single-word GQA answer given by the prefill (no decode step).
DEFAULT_NEW_TOKENS = 1

#: Bytes per element of the KV cache for the accepted dtype names.
DTYPE_BYTES: dict[str, int] = {
    "fp32": 4, "float32": 4, "tf32": 4, "fp16": 2, "float16": 2, "half": 2, "bf16": 2, "bfloat16": 2,
    "fp8": 1, "float8": 1, "int8": 1,
}  # fmt: skip

Method = Literal["counted", "analytic"]

_COUNT_NAMES = ("kept tokens", "text tokens", "new tokens")


@dataclass(frozen=True)
class FlopsBreakdown:
    """FLOPs per component of one sample's inference, and its final KV-cache size.

    Attributes:
        tokens: image tokens kept (K).
        prompt_tokens: text tokens of the prompt (image placeholders excluded).
        new_tokens: tokens generated.
        vision: vision tower, every layer HF runs.
        selection: the token selector (0 when nothing is pruned).
        projector: multi-modal projector on the K kept tokens.
        llm_prefill: language model over ``prompt_tokens + K`` positions, LM head on the last one.
        decode: the ``new_tokens - 1`` one-token steps after the prefill, attention over the growing cache.
        kv_cache_bytes: KV cache after generation, ``prompt_tokens + K + max(new_tokens - 1, 0)`` positions.
    """

    tokens: int
    prompt_tokens: int
    new_tokens: int
    vision: int
    selection: int
    projector: int
    llm_prefill: int
    decode: int
    kv_cache_bytes: int

    @property
    def total(self) -> int:
        """Sum of the FLOPs components."""
        return self.vision + self.selection + self.projector + self.llm_prefill + self.decode

    def reduction_pct(self, baseline: FlopsBreakdown) -> float:
        """Percent of ``baseline.total`` saved: ``100 * (1 - total / baseline.total)``."""
        return 100.0 * (1.0 - self.total / baseline.total)

    def as_dict(self) -> dict[str, int]:
        """The fields plus ``total``, as plain ints (JSON-ready)."""
        return {**asdict(self), "total": self.total}


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _index(value: Any) -> Any:
    # ints, NumPy and torch integer scalars; anything else is left for _check_count to reject by name.
    if isinstance(value, bool):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


def _dtype_bytes(dtype: Any) -> int:
    itemsize = getattr(dtype, "itemsize", None)  # a torch.dtype
    if isinstance(itemsize, int):
        return itemsize
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; expected a torch.dtype or one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def kv_cache_bytes(config: Any, positions: int, dtype: Any = "bf16") -> int:
    """Bytes of the KV cache holding ``positions`` positions: ``2 * layers * kv_heads * head_dim * positions * bytes``.

    Example:
        >>> kv_cache_bytes("llava-1.5-7b", 1, "bf16")  # 2 (K, V) x 32 layers x 4096 x 2 bytes
        524288
    """
    text = load_arch_config(config).text_config
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or int(text.hidden_size) // heads)
    positions = _check_count("positions", positions)
    return 2 * int(text.num_hidden_layers) * kv_heads * head_dim * positions * _dtype_bytes(dtype)


def _costs(config: Any, method: str) -> ComponentCosts:
    if method == "counted":
        return counted_costs(config)
    if method == "analytic":
        return analytic_costs(config)
    raise ValueError(f"method must be 'counted' or 'analytic', got {method!r}")


def _geometry(config: Any, image_size: Any) -> tuple[int, int, int]:
    """``(vision-tower views, image tokens, language-model positions)`` of one image."""
    if is_anyres(config):  # LLaVA-NeXT / OneVision: base view + crops, one newline per grid row
        size = DEFAULT_ANYRES_IMAGE_SIZE if image_size is None else tuple(int(v) for v in image_size)
        geometry = anyres_geometry(config, size)  # type: ignore[arg-type]
        return geometry.views, geometry.tokens, geometry.positions
    tokens = image_token_count(config)
    return 1, tokens, tokens


def _one_sample(
    config: Any,
    costs: ComponentCosts,
    sample: tuple[Any, Any, Any],
    solver: str | None,
    rank: int | None,
    dtype: Any,
    image_size: Any = None,
    fastv_layer: int | None = None,
) -> FlopsBreakdown:
    kept, text, new = (_check_count(name, value) for name, value in zip(_COUNT_NAMES, sample, strict=True))
    views, vision_tokens, image_tokens = _geometry(config, image_size)
    if kept > image_tokens:
        raise ValueError(f"kept tokens must be <= the {image_tokens} tokens of one image, got {kept}")
    if solver is not None and solver not in SELECTION_SOLVERS:
        raise ValueError(f"unknown selection solver {solver!r}; expected None or one of {SELECTION_SOLVERS}")
    if fastv_layer is not None:
        return _fastv_sample(config, costs, kept, text, new, dtype, vision_tokens, image_tokens, views, fastv_layer)
    selection = 0
    if solver is not None and kept < image_tokens:  # an unpruned model runs no selector
        selection = selection_flops(vision_tokens, int(config.vision_config.hidden_size), solver, rank)
    positions = text + kept
    return FlopsBreakdown(
        tokens=kept,
        prompt_tokens=text,
        new_tokens=new,
        vision=views * costs.vision,
        selection=selection,
        projector=costs.projector_flops(kept),
        llm_prefill=costs.prefill_flops(positions),
        decode=costs.decode_flops(positions, new),
        kv_cache_bytes=kv_cache_bytes(config, positions + max(new - 1, 0), dtype),
    )


def _fastv_sample(
    config: Any, costs: ComponentCosts, kept: int, text: int, new: int, dtype: Any, vision_tokens: int,
    image_tokens: int, views: int, fastv_layer: Any,
) -> FlopsBreakdown:
    """FastV: the projector maps every image token and the first ``fastv_layer`` decoder layers see (and cache)
    all of them; only the later layers run on ``kept`` image tokens. Every decoder layer costs the same, so the
    language-model terms (prefill, decode, KV cache) split by layer count exactly; the LM head is counted once.
    """
    layers = int(config.text_config.num_hidden_layers)
    if isinstance(fastv_layer, bool) or not isinstance(fastv_layer, int) or not 1 <= fastv_layer < layers:
        raise ValueError(f"fastv_layer must be an int in [1, {layers - 1}] for a {layers}-layer language model, "
                         f"got {fastv_layer!r}")
    early = Fraction(fastv_layer, layers)
    full, pruned = text + image_tokens, text + kept

    def split(at_full: int, at_pruned: int) -> int:
        return round(early * at_full + (1 - early) * at_pruned)

    cached = max(new - 1, 0)
    return FlopsBreakdown(
        tokens=kept,
        prompt_tokens=text,
        new_tokens=new,
        vision=views * costs.vision,
        selection=0,  # the ranking is one attention row the model computes anyway
        projector=costs.projector_flops(vision_tokens),  # FastV prunes inside the LLM: every token is projected
        llm_prefill=split(costs.prefill_flops(full), costs.prefill_flops(pruned)),
        decode=split(costs.decode_flops(full, new), costs.decode_flops(pruned, new)),
        kv_cache_bytes=split(kv_cache_bytes(config, full + cached, dtype),
                             kv_cache_bytes(config, pruned + cached, dtype)),
    )


def count_flops(
    config: Any = "llava-1.5-7b",
    tokens: int | None = None,
    *,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    new_tokens: int = DEFAULT_NEW_TOKENS,
    dtype: Any = "bf16",
    selection_solver: str | None = "svd",
    selection_rank: int | None = None,
    method: Method = "counted",
    image_size: tuple[int, int] | None = None,
    fastv_layer: int | None = None,
) -> FlopsBreakdown:
    """FLOPs per component of one sample keeping ``tokens`` image tokens.

    Args:
        config: a bundled name (``"llava-1.5-7b"``, ``"llava-1.5-13b"``), a local folder or hub id with a
            config, or a LLaVA config object.
        tokens: image tokens kept; ``None`` keeps all of them (the unpruned model, no selection cost).
        prompt_tokens: text tokens of the prompt, image placeholders excluded.
        new_tokens: tokens generated (the prefill gives the first, each further one is a decode step).
        dtype: KV-cache dtype (``"bf16"``, ``"fp16"``, ``"fp32"``, ... or a ``torch.dtype``).
        selection_solver: solver of the selector (``"svd"``, ``"gram"``, ``"lowrank"``, ``"auto"``), or
            ``None`` for a selector with no FLOPs worth counting (random, uniform grid). Only counted when
            tokens are actually pruned (``tokens`` < image tokens).
        selection_rank: rank k used for the leverage scores, if known (see ``selection_flops``).
        method: ``"counted"`` (``FlopCounterMode`` on meta-device modules) or ``"analytic"`` (closed form).
        image_size: ``(height, width)`` of the image, for the anyres families (LLaVA-NeXT, OneVision), whose
            vision cost and positions depend on it (default 672 x 672); ``tokens`` then counts positions,
            newlines included, and the vision tower runs once per view. Qwen2(.5)-VL: the image is resized as its
            processor does (default 1008 x 672, 864 merged tokens), see :func:`qwen_vl_flops`. Ignored for LLaVA-1.5.
        fastv_layer: count FastV instead of a selector before the projector: ``tokens`` image tokens are kept from
            this decoder layer on, the projector and the first ``fastv_layer`` layers see them all (no selection
            cost). LLaVA-1.5-style and anyres configs.

    Raises:
        ValueError: for an unknown model, negative counts or more tokens than one image has.

    Example:
        >>> full, pruned = count_flops("llava-1.5-7b", 576), count_flops("llava-1.5-7b", 16)
        >>> round(full.total / 1e12, 2), round(pruned.total / 1e12, 2), round(pruned.reduction_pct(full), 1)
        (8.82, 1.34, 84.8)
        >>> long = count_flops("llava-1.5-7b", 16, prompt_tokens=120, new_tokens=8)
        >>> round(long.reduction_pct(count_flops("llava-1.5-7b", prompt_tokens=120, new_tokens=8)), 1)
        76.9
    """
    config = load_arch_config(config)
    if is_qwen_vl(config):  # native resolution: vision cost and tokens follow the image's patch grid
        from adaptive_svdprune.flops._qwen import DEFAULT_QWEN_IMAGE_SIZE, qwen_vl_flops

        _counted_only(config, method)
        if fastv_layer is not None:
            raise ValueError(f"fastv_layer is not counted for {config.model_type} yet (LLaVA-1.5 and anyres only)")
        return qwen_vl_flops(config, image_size=image_size or DEFAULT_QWEN_IMAGE_SIZE, tokens=tokens,
                             prompt_tokens=prompt_tokens, new_tokens=new_tokens, dtype=dtype,
                             selection_solver=selection_solver, selection_rank=selection_rank)
    kept = _geometry(config, image_size)[2] if tokens is None else tokens
    sample = (_index(kept), _index(prompt_tokens), _index(new_tokens))
    return _one_sample(config, _costs(config, method), sample, selection_solver, selection_rank, dtype, image_size,
                       fastv_layer)


def is_qwen_vl(config: Any) -> bool:
    """Whether ``config`` is a Qwen2-VL / Qwen2.5-VL config (native resolution: tokens follow the image size)."""
    return getattr(config, "model_type", None) in ("qwen2_vl", "qwen2_5_vl")


def _counted_only(config: Any, method: str) -> None:
    if method != "counted":
        raise ValueError(f"{config.model_type} FLOPs are counted on the meta device only; got method {method!r}")


def batch_flops(
    config: Any,
    kept_tokens: Sequence[int],
    text_tokens: Sequence[int],
    new_tokens: Sequence[int] | int,
    *,
    selection_solver: str | None = "svd",
    selection_rank: Sequence[int | None] | int | None = None,
    dtype: Any = "bf16",
    method: Method = "counted",
    image_sizes: Sequence[tuple[int, int]] | Any | None = None,
    image_grid_thw: Any = None,
    fastv_layer: int | None = None,
) -> list[FlopsBreakdown]:
    """Per-sample FLOPs of a real batch, from each sample's kept tokens and prompt length.

    Padding is not counted: each sample costs what it would cost alone (its useful FLOPs).

    Args:
        config: as for :func:`count_flops`.
        kept_tokens: image tokens kept per sample (``len(TokenSelection.indices[i])``).
        text_tokens: text tokens per sample (non-padding prompt length minus the image placeholders).
        new_tokens: tokens generated per sample (up to and including EOS), or one int for all.
        selection_solver: as for :func:`count_flops`.
        selection_rank: rank k per sample (adaptive SVD-Prune), one int for all, or ``None``.
        dtype: KV-cache dtype.
        method: ``"counted"`` or ``"analytic"``.
        image_sizes: ``(height, width)`` per sample (the processor's ``image_sizes``); required for the anyres
            families (LLaVA-NeXT, OneVision), ignored for LLaVA-1.5.
        image_grid_thw: Qwen2(.5)-VL: the processor's ``image_grid_thw``, one row per sample (required there).
        fastv_layer: FastV at this layer (see :func:`count_flops`); ``kept_tokens`` are the tokens it keeps.

    Returns:
        One :class:`FlopsBreakdown` per sample.

    Raises:
        ValueError: if the sequences differ in length, or for any invalid count.

    Example:
        >>> rows = batch_flops("llava-1.5-7b", [16, 64], [70, 58], [1, 3])
        >>> [r.tokens + r.prompt_tokens for r in rows], rows[0].total < rows[1].total
        ([86, 122], True)
    """
    config = load_arch_config(config)
    size = len(kept_tokens)
    news = [new_tokens] * size if isinstance(new_tokens, int) else list(new_tokens)
    ranks = (
        [selection_rank] * size if selection_rank is None or isinstance(selection_rank, int) else list(selection_rank)
    )
    if not len(text_tokens) == len(news) == len(ranks) == size:
        raise ValueError(
            f"per-sample sequences differ in length: {len(kept_tokens)=}, {len(text_tokens)=}, "
            f"new_tokens {len(news)}, selection_rank {len(ranks)}"
        )
    if is_qwen_vl(config):  # one image per sample, its processor grid (t, h, w)
        from adaptive_svdprune.flops._qwen import qwen_vl_batch_flops

        if fastv_layer is not None:
            raise ValueError(f"fastv_layer is not counted for {config.model_type} yet (LLaVA-1.5 and anyres only)")

        _counted_only(config, method)
        if image_grid_thw is None:
            raise ValueError(f"{config.model_type} costs depend on each image's patch grid: pass image_grid_thw (the "
                             "processor's image_grid_thw, one row per sample)")
        grids = [[tuple(int(v) for v in g)] for g in (image_grid_thw.tolist() if hasattr(image_grid_thw, "tolist")
                                                      else image_grid_thw)]
        return qwen_vl_batch_flops(config, grids, [[k] for k in kept_tokens], list(text_tokens), news,
                                   selection_solver=selection_solver, dtype=dtype, selection_rank=ranks)
    if image_sizes is None and is_anyres(config):
        raise ValueError(f"{config.model_type} costs depend on each image's size: pass image_sizes (the "
                         "processor's image_sizes, one (height, width) per sample)")
    sizes = [None] * size if image_sizes is None else [tuple(int(v) for v in s) for s in image_sizes]
    if len(sizes) != size:
        raise ValueError(f"image_sizes has {len(sizes)} entries for {size} samples")
    costs = _costs(config, method)
    return [
        _one_sample(config, costs, (_index(k), _index(t), _index(m)), selection_solver, r, dtype, s, fastv_layer)
        for k, t, m, r, s in zip(kept_tokens, text_tokens, news, ranks, sizes, strict=True)
    ]
