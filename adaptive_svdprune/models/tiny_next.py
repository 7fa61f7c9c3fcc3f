"""Offline, random-init LLaVA-NeXT- and LLaVA-OneVision-shaped checkpoints (anyres) for tests and demos.

* ``tiny-next``: LLaVA-v1.6-Vicuna geometry: CLIP 336 px / patch 14 (576 tokens per view, feature layer -2, CLS
  dropped), the real anyres grids (336x672, 672x336, 672x672, 1008x336, 336x1008), a learned newline per row of
  the unpadded crop grid, the ``USER: <image>\\n... ASSISTANT:`` prompt; a Llama text model.
* ``tiny-onevision``: LLaVA-OneVision geometry scaled down for CPU tests: SigLIP-style tower (no CLS, feature layer
  -1, ``"full"``), 168 px / patch 14 views (144 tokens; the real model has 384 px, 729 tokens), the real 6x6 grid
  table scaled to 168 px, ``anyres_max_9`` down-sampling of large grids, a ChatML prompt; a Qwen2 text model.

Widths and depths are tiny (vision 32 wide, text 64 wide, 3 layers each), the tokenizer is the tiny LLaVA's BPE,
and the processors are the real classes with their slow (PIL) image processors and no video processor (see
DESIGN.md: torchvision is not importable next to a CPU torch here). Random weights generate garbage text.

Example:
    >>> from adaptive_svdprune.models.families import load_model
    >>> model, processor = load_model(tiny_next_path())
    >>> type(model).__name__, model.config.image_grid_pinpoints[2]
    ('LlavaNextForConditionalGeneration', [672, 672])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from adaptive_svdprune.models.tiny import LLAVA_15_CHAT_TEMPLATE, _train_tokenizer, cached_checkpoint, save_seeded

__all__ = ["CHATML_TEMPLATE", "TINY_NEXT_VERSION", "build_tiny_anyres", "tiny_next_path", "tiny_onevision_path"]

Family = Literal["next", "onevision"]

#: Bumped whenever a tiny anyres checkpoint changes, so that cached copies are rebuilt.
TINY_NEXT_VERSION = "v1"

#: ChatML as LLaVA-OneVision (Qwen2) writes it: ``<|im_start|>user <image>\n{text}<|im_end|>...assistant\n``.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }} "
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}"
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_NEXT_SIZE, _NEXT_PATCH = 336, 14
_NEXT_GRIDS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
_OV_SIZE, _OV_PATCH = 168, 14
_OV_GRIDS = [[_OV_SIZE * i, _OV_SIZE * j] for i in range(1, 7) for j in range(1, 7)]


def _text_kwargs(tokenizer: Any) -> dict[str, Any]:
    return dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
        initializer_range=0.5,  # as the tiny LLaVA: greedy output then depends on image and question
    )


def _next(path: Path, tokenizer: Any) -> tuple[Any, Any]:
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=_NEXT_SIZE, patch_size=_NEXT_PATCH, projection_dim=32)
    config = LlavaNextConfig(
        vision_config=vision, text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_grid_pinpoints=_NEXT_GRIDS,
        image_seq_length=(_NEXT_SIZE // _NEXT_PATCH) ** 2, projector_hidden_act="gelu",
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": _NEXT_SIZE}, crop_size={"height": _NEXT_SIZE, "width": _NEXT_SIZE},
        image_grid_pinpoints=_NEXT_GRIDS,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=_NEXT_PATCH,
        vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=LLAVA_15_CHAT_TEMPLATE,
    )
    return LlavaNextForConditionalGeneration, (config, processor)


def _onevision(path: Path, tokenizer: Any) -> tuple[Any, Any]:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        Qwen2Config,
        SiglipVisionConfig,
    )

    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                image_size=_OV_SIZE, patch_size=_OV_PATCH, vision_use_head=False)
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=Qwen2Config(**_text_kwargs(tokenizer), use_sliding_window=False),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"), vision_feature_layer=-1,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", image_grid_pinpoints=_OV_GRIDS,
        projector_hidden_act="gelu",
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": _OV_SIZE, "width": _OV_SIZE}, image_grid_pinpoints=_OV_GRIDS,
    )
    from adaptive_svdprune.models.processors import ImageOnlyOnevisionProcessor

    processor = ImageOnlyOnevisionProcessor(
        image_processor=image_processor, tokenizer=tokenizer,
        num_image_tokens=(_OV_SIZE // _OV_PATCH) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=CHATML_TEMPLATE,
    )
    return LlavaOnevisionForConditionalGeneration, (config, processor)


def build_tiny_anyres(path: str | os.PathLike[str], family: Family = "next", seed: int = 0) -> Path:
    """Write a tiny random-init anyres checkpoint (``family`` ``"next"`` or ``"onevision"``) to ``path``.

    The same ``seed`` gives the same weights; the global RNG state is left untouched. Loads with
    :func:`adaptive_svdprune.models.families.load_model`.
    """

    if family not in ("next", "onevision"):
        raise ValueError(f"family must be 'next' or 'onevision', got {family!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(path)
    if family == "onevision":
        tokenizer.add_special_tokens({"additional_special_tokens": ["<video>", "<|im_start|>", "<|im_end|>"]})
        tokenizer.save_pretrained(path)
    model_class, (config, processor) = (_next if family == "next" else _onevision)(path, tokenizer)
    save_seeded(model_class, config, path, seed, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    processor.save_pretrained(path)
    return path


def _cached(family: Family, cache_dir: str | os.PathLike[str] | None, seed: int) -> Path:
    return cached_checkpoint(f"tiny-{family}-{TINY_NEXT_VERSION}-seed{seed}",
                             lambda path: build_tiny_anyres(path, family=family, seed=seed), cache_dir)


def tiny_next_path(cache_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> Path:
    """Folder of the tiny LLaVA-NeXT checkpoint, built once and reused (see :func:`~.tiny.tiny_llava_path`)."""
    return _cached("next", cache_dir, seed)


def tiny_onevision_path(cache_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> Path:
    """Folder of the tiny LLaVA-OneVision checkpoint, built once and reused."""
    return _cached("onevision", cache_dir, seed)
