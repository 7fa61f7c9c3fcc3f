"""An offline, random-init Qwen2.5-VL-shaped checkpoint for tests and demos (``--model tiny-qwen2.5-vl``).

The geometry is Qwen2.5-VL's: native resolution (``smart_resize`` to multiples of 28 px), 14 px patches with a
temporal patch of 2, a 2 x 2 patch merger (one language-model token per 28 x 28 px), window attention with
full-attention blocks, M-RoPE (time, height, width sections) in the language model, and the
``<|vision_start|><|image_pad|>...<|vision_end|>`` chat format. Widths and depths are tiny, images are capped at
``16 x 16`` merged tokens (448 x 448 px) and the byte-level BPE tokenizer is trained here on the bundled text, so
everything builds in seconds without network access. Random weights generate garbage text; that is expected.

The processor is ``Qwen2_5_VLProcessor`` with the PIL ``Qwen2VLImageProcessorPil`` and no video processor
(:func:`~adaptive_svdprune.models.qwen_processor.image_only_processor`): the stock video processor needs
torchvision, which does not import next to CPU torch here (DESIGN.md section 4).

Example:
    >>> import tempfile
    >>> from adaptive_svdprune.models.qwen_vl import load_qwen_vl
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     model, processor = load_qwen_vl(build_tiny_qwen_vl(tmp))
    >>> type(model).__name__, model.config.vision_config.spatial_merge_size, model.config.text_config.hidden_size
    ('Qwen2_5_VLForConditionalGeneration', 2, 64)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adaptive_svdprune.models.tiny import cached_checkpoint, save_seeded

__all__ = ["QWEN2_5_VL_CHAT_TEMPLATE", "TINY_QWEN_VERSION", "build_tiny_qwen_vl", "tiny_qwen_vl_path"]

#: Bumped whenever the tiny checkpoint changes, so that cached copies are rebuilt.
TINY_QWEN_VERSION = "v2"

#: Qwen2.5-VL's chat template for images and text (default system turn, ``<|im_start|>role\n...<|im_end|>``).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_PATCH_SIZE, _MERGE_SIZE = 14, 2
_MIN_MERGED, _MAX_MERGED = 4, 256  # merged tokens per image: 56 x 56 px to 448 x 448 px
_VOCAB_SIZE = 1000  # BPE target before the special tokens
_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
             "<|image_pad|>", "<|video_pad|>")


def _train_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from adaptive_svdprune.assets import corpus_lines

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    tok.add_special_tokens(list(_SPECIALS))  # like Qwen: after the trained vocabulary, no BOS
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
        padding_side="left", model_max_length=4096,
    )
    fast.save_pretrained(path)
    return fast


def build_tiny_qwen_vl(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a tiny random-init Qwen2.5-VL checkpoint, tokenizer and processor to ``path``.

    Sizes: vision tower hidden 32, 3 blocks (the last with full attention, the others windowed), 4 heads, patch
    14, merge 2, window 112 px; Qwen2 text model hidden 64, 3 layers (FastV's default ``fastv_layer=2``
    applies), 4 query / 2 key-value heads, M-RoPE sections ``[2, 3, 3]``; images resized to 4..256 merged
    tokens. The same ``seed`` gives the same weights. Loads with
    :func:`adaptive_svdprune.models.qwen_vl.load_qwen_vl`.

    Args:
        path: output folder (created if needed).
        seed: seed of the weight initialisation (the global RNG state is left untouched).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    from adaptive_svdprune.models.qwen_processor import image_only_processor

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(path)
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in _SPECIALS}
    vision = {
        "depth": 3, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4, "patch_size": _PATCH_SIZE,
        "spatial_merge_size": _MERGE_SIZE, "temporal_patch_size": 2, "window_size": 112, "out_hidden_size": 64,
        "fullatt_block_indexes": [2], "tokens_per_second": 2,
    }
    text = {
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        # NOTE: a wide init (std 0.5, not 0.02), as in the tiny LLaVA, makes the random model's greedy output
        # depend on the image and the question, which is what the equality tests need to be meaningful.
        "initializer_range": 0.5,
    }
    config = Qwen2_5_VLConfig(
        vision_config=vision, text_config=text, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
    )
    save_seeded(Qwen2_5_VLForConditionalGeneration, config, path, seed, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"])
    unit = (_PATCH_SIZE * _MERGE_SIZE) ** 2
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=_MIN_MERGED * unit, max_pixels=_MAX_MERGED * unit, patch_size=_PATCH_SIZE,
        temporal_patch_size=2, merge_size=_MERGE_SIZE,
    )
    processor = image_only_processor(image_processor, tokenizer, chat_template=QWEN2_5_VL_CHAT_TEMPLATE)
    processor.save_pretrained(path)
    return path


def tiny_qwen_vl_path(cache_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> Path:
    """Folder of the tiny checkpoint, built once and reused (``<cache>/tiny-qwen2.5-vl-<version>-seed<seed>``).

    ``cache_dir`` defaults as for :func:`adaptive_svdprune.models.tiny.tiny_llava_path`. The build goes to a
    temporary sibling folder that is renamed into place, so concurrent callers never see a half-written checkpoint.
    """
    return cached_checkpoint(f"tiny-qwen2.5-vl-{TINY_QWEN_VERSION}-seed{seed}",
                             lambda path: build_tiny_qwen_vl(path, seed=seed), cache_dir)
