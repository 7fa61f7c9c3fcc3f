"""FLOPs of pruned Qwen2-VL / Qwen2.5-VL inference, counted on the meta device, per image resolution.

Qwen2(.5)-VL differs from LLaVA in what a sample costs:

- the vision tower runs at native resolution, so its cost depends on each image's patch grid
  (``image_grid_thw``; an ``H x W`` image becomes ``(H / 14) x (W / 14)`` patches after ``smart_resize`` to
  multiples of 28 px), including Qwen2.5-VL's window attention (windows of 112 px, full attention in the
  ``fullatt_block_indexes`` blocks);
- the 2 x 2 patch merger is part of the tower and already maps to the language model's width, so there is
  no separate projector (``projector`` is 0) and the selector runs on ``T = t h w / 4`` merged tokens of width
  ``out_hidden_size``;
- M-RoPE changes positions, not matrix products: the language model costs what a Qwen2 decoder of the same
  sizes costs over ``text + K`` positions.

The real ``Qwen2_5_VLForConditionalGeneration`` (or Qwen2-VL) is built from the config on the ``meta`` device
(no weights) and run under ``FlopCounterMode``: the vision tower once per distinct grid, the language model at
two prefill lengths and one decode step (the exact coefficients of its cost, as for LLaVA). The window and
position indices that the tower derives from the grid are computed on the CPU first and passed in, since they
are data, not shapes.

Example:
    >>> full = qwen_vl_flops("qwen2.5-vl-7b", image_size=(1008, 672))
    >>> pruned = qwen_vl_flops("qwen2.5-vl-7b", image_size=(1008, 672), tokens=64)
    >>> full.tokens, round(pruned.reduction_pct(full), 1)
    (864, 62.9)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from adaptive_svdprune.flops._archs import load_arch_config
from adaptive_svdprune.flops._core import DEFAULT_NEW_TOKENS, DEFAULT_PROMPT_TOKENS, FlopsBreakdown, kv_cache_bytes
from adaptive_svdprune.flops._costs import solve_exact
from adaptive_svdprune.flops._counted import FIT_LENGTHS, _cache_keyword, _output_cache, count_forward
from adaptive_svdprune.flops._selection import SELECTION_SOLVERS, selection_flops

__all__ = [
    "DEFAULT_QWEN_IMAGE_SIZE",
    "QWEN_MAX_PIXELS",
    "QWEN_MIN_PIXELS",
    "qwen_vl_batch_flops",
    "qwen_vl_flops",
    "qwen_vl_grid",
]

#: Pixel bounds of the released Qwen2-VL / Qwen2.5-VL image processors (``preprocessor_config.json``).
QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 56 * 56, 28 * 28 * 16384
#: ``(height, width)`` used by ``count_flops`` for Qwen configs when none is given: 72 x 48 patches, 864 tokens.
DEFAULT_QWEN_IMAGE_SIZE = (1008, 672)

_MODELS: dict[str, Any] = {}
_VISION: dict[tuple[str, tuple[int, int, int]], int] = {}
_TEXT: dict[str, tuple[tuple[int, int, int], tuple[int, int]]] = {}
_LOCK = threading.RLock()


def _check_qwen(config: Any) -> Any:
    config = load_arch_config(config)
    if getattr(config, "model_type", None) not in ("qwen2_vl", "qwen2_5_vl"):
        raise ValueError(f"qwen_vl_flops needs a Qwen2-VL or Qwen2.5-VL config, got model_type "
                         f"{getattr(config, 'model_type', None)!r}")
    return config


def qwen_vl_grid(config: Any, height: int, width: int, min_pixels: int = QWEN_MIN_PIXELS,
                 max_pixels: int = QWEN_MAX_PIXELS) -> tuple[int, int, int]:
    """``(t, h, w)`` patch grid of an ``height x width`` image, as the Qwen2-VL image processor resizes it.

    Example:
        >>> qwen_vl_grid("qwen2.5-vl-7b", 1008, 672), qwen_vl_grid("qwen2.5-vl-7b", 480, 640)
        ((1, 72, 48), (1, 34, 46))
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    vision = _check_qwen(config).vision_config
    patch, merge = int(vision.patch_size), int(vision.spatial_merge_size)
    if min(height, width) < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    h, w = smart_resize(height, width, factor=patch * merge, min_pixels=min_pixels, max_pixels=max_pixels)
    return 1, h // patch, w // patch


def _meta_model(config: Any) -> Any:
    import torch
    import transformers

    key = config.to_json_string(use_diff=False)
    with _LOCK:
        if key not in _MODELS:
            name = "Qwen2_5_VLForConditionalGeneration" if config.model_type == "qwen2_5_vl" else \
                "Qwen2VLForConditionalGeneration"
            with torch.device("meta"):
                model = getattr(transformers, name)._from_config(config, attn_implementation="sdpa")
            _MODELS[key] = model.eval()
        return _MODELS[key]


def _vision_flops(config: Any, grid: tuple[int, int, int]) -> int:
    import torch
    from transformers.vision_utils import get_vision_position_ids, get_vision_window_index

    key = (config.to_json_string(use_diff=False), grid)
    with _LOCK:
        if key in _VISION:
            return _VISION[key]
        visual = _meta_model(config).model.visual
        vc = config.vision_config
        grid_thw = torch.tensor([grid])
        extra: dict[str, Any] = {"position_ids": get_vision_position_ids(grid_thw, int(vc.spatial_merge_size))}
        if config.model_type == "qwen2_5_vl":
            index, cu_windows = get_vision_window_index(grid_thw, int(vc.spatial_merge_size), int(vc.window_size),
                                                        int(vc.patch_size))
            extra.update(window_index=index.to("meta"), cu_window_seqlens=cu_windows)
        extra["position_ids"] = extra["position_ids"].to("meta")
        channels = int(getattr(vc, "in_channels", 3)) * int(vc.temporal_patch_size) * int(vc.patch_size) ** 2
        pixels = torch.empty(int(grid_thw.prod()), channels, device="meta")
        _VISION[key], _ = count_forward(visual, pixels, grid_thw=grid_thw, **extra)
        return _VISION[key]


def _text_costs(config: Any) -> tuple[tuple[int, int, int], tuple[int, int]]:
    import torch

    key = config.to_json_string(use_diff=False)
    with _LOCK:
        if key in _TEXT:
            return _TEXT[key]
        model = _meta_model(config)
        width = int(config.text_config.hidden_size)
        meta = torch.device("meta")
        # Text-only positions (no input_ids, no image grid): M-RoPE is element-wise and costs no FLOPs here.
        prefills = {n: count_forward(model, inputs_embeds=torch.empty(1, n, width, device=meta), use_cache=True,
                                     logits_to_keep=1) for n in FIT_LENGTHS}
        cached = FIT_LENGTHS[0]
        step, _ = count_forward(model, inputs_embeds=torch.empty(1, 1, width, device=meta), use_cache=True,
                                logits_to_keep=1, **{_cache_keyword(model): _output_cache(prefills[cached][1])})
        rows = [[1, n, n * n] for n in FIT_LENGTHS] + [[1, 1, 1 + cached]]
        c0, c1, c2 = solve_exact(rows, [prefills[n][0] for n in FIT_LENGTHS] + [step])
        model.model.rope_deltas = None
        _TEXT[key] = ((c0, c1, c2), (c0 + c1 + c2, c2))
        return _TEXT[key]


def _grids(config: Any, image_size: tuple[int, int] | None, grid_thw: Any) -> list[tuple[int, int, int]]:
    if (image_size is None) == (grid_thw is None):
        raise ValueError("pass exactly one of image_size (height, width) or grid_thw")
    if image_size is not None:
        return [qwen_vl_grid(config, int(image_size[0]), int(image_size[1]))]
    rows = grid_thw.tolist() if hasattr(grid_thw, "tolist") else list(grid_thw)
    rows = [rows] if rows and isinstance(rows[0], int) else rows
    merge = int(config.vision_config.spatial_merge_size)
    out = []
    for row in rows:
        t, h, w = (int(v) for v in row)
        if min(t, h, w) < 1 or h % merge or w % merge:
            raise ValueError(f"grid_thw rows must be positive with h and w multiples of {merge}, got {row}")
        out.append((t, h, w))
    return out


def _sample(config: Any, grids: list[tuple[int, int, int]], kept: Sequence[int] | None, prompt_tokens: int,
            new_tokens: int, solver: str | None, rank: int | None, dtype: Any) -> FlopsBreakdown:
    merge = int(config.vision_config.spatial_merge_size) ** 2
    tokens = [t * h * w // merge for t, h, w in grids]
    kept = list(tokens) if kept is None else [int(k) for k in kept]
    if len(kept) != len(tokens):
        raise ValueError(f"{len(kept)} kept counts for {len(tokens)} images")
    bad = [(k, t) for k, t in zip(kept, tokens, strict=True) if not 0 <= k <= t]
    if bad:
        raise ValueError(f"kept tokens must be in [0, T] per image, got (kept, T) = {bad}")
    for name, value in (("prompt_tokens", prompt_tokens), ("new_tokens", new_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if solver is not None and solver not in SELECTION_SOLVERS:
        raise ValueError(f"unknown selection solver {solver!r}; expected None or one of {SELECTION_SOLVERS}")
    width = int(config.vision_config.out_hidden_size if config.model_type == "qwen2_5_vl"
                else config.vision_config.hidden_size)
    selection = sum(selection_flops(t, width, solver, rank) for k, t in zip(kept, tokens, strict=True)
                    if solver is not None and k < t)
    (c0, c1, c2), (d0, d1) = _text_costs(config)
    positions = prompt_tokens + sum(kept)
    steps = max(new_tokens - 1, 0)
    return FlopsBreakdown(
        tokens=sum(kept), prompt_tokens=prompt_tokens, new_tokens=new_tokens,
        vision=sum(_vision_flops(config, g) for g in grids), selection=selection, projector=0,
        llm_prefill=c0 + c1 * positions + c2 * positions * positions,
        decode=steps * d0 + d1 * (steps * positions + steps * (steps - 1) // 2),
        kv_cache_bytes=kv_cache_bytes(config, positions + steps, dtype),
    )


def qwen_vl_flops(
    config: Any = "qwen2.5-vl-7b",
    image_size: tuple[int, int] | None = None,
    *,
    grid_thw: Any = None,
    tokens: int | Sequence[int] | None = None,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    new_tokens: int = DEFAULT_NEW_TOKENS,
    dtype: Any = "bf16",
    selection_solver: str | None = "svd",
    selection_rank: int | None = None,
) -> FlopsBreakdown:
    """FLOPs per component of one Qwen2(.5)-VL sample (its images and one prompt).

    Args:
        config: ``"qwen2.5-vl-7b"`` (bundled), a folder or hub id with a config, or a config object.
        image_size: ``(height, width)`` in pixels of one image (resized like the released processor).
        grid_thw: instead of ``image_size``: the processor's ``image_grid_thw`` rows of the sample's images.
        tokens: merged tokens kept (K) per image, one int for a single image; ``None`` keeps all.
        prompt_tokens: text tokens of the prompt (image placeholders excluded, vision start/end included).
        new_tokens: tokens generated.
        dtype: KV-cache dtype.
        selection_solver: SVD-Prune's solver, or ``None`` for a selector without FLOPs worth counting; counted
            only for images that are actually pruned.
        selection_rank: rank k of the leverage scores, if known.

    Returns:
        A :class:`FlopsBreakdown` (``projector`` is 0: the merger is part of the vision tower).
    """
    config = _check_qwen(config)
    grids = _grids(config, image_size, grid_thw)
    kept = [tokens] if isinstance(tokens, int) else tokens
    return _sample(config, grids, kept, prompt_tokens, new_tokens, selection_solver, selection_rank, dtype)


def qwen_vl_batch_flops(
    config: Any,
    grids: Sequence[Any],
    kept_tokens: Sequence[Sequence[int]],
    text_tokens: Sequence[int],
    new_tokens: Sequence[int] | int,
    *,
    selection_solver: str | None = "svd",
    dtype: Any = "bf16",
    selection_rank: Sequence[int | None] | None = None,
) -> list[FlopsBreakdown]:
    """Per-sample FLOPs of a real batch: per sample its images' ``grid_thw`` rows and kept counts.

    Example:
        >>> rows = qwen_vl_batch_flops("qwen2.5-vl-7b", [[(1, 72, 48)], [(1, 28, 28)]], [[64], [196]], [40, 40], 1)
        >>> [r.tokens for r in rows], rows[1].selection
        ([64, 196], 0)
    """
    config = _check_qwen(config)
    size = len(grids)
    news = [new_tokens] * size if isinstance(new_tokens, int) else list(new_tokens)
    ranks = [None] * size if selection_rank is None else list(selection_rank)
    if not len(kept_tokens) == len(text_tokens) == len(news) == len(ranks) == size:
        raise ValueError(f"per-sample sequences differ in length: {len(grids)=}, {len(kept_tokens)=}, "
                         f"{len(text_tokens)=}, new_tokens {len(news)}, selection_rank {len(ranks)}")
    return [_sample(config, _grids(config, None, g), k, int(t), int(n), selection_solver, r, dtype)
            for g, k, t, n, r in zip(grids, kept_tokens, text_tokens, news, ranks, strict=True)]
