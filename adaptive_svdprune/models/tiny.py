"""An offline, random-init LLaVA-1.5-shaped checkpoint for tests and demos.

The geometry is LLaVA-1.5's (336 px images, patch 14, 576 image tokens, feature layer -2, CLS dropped, the
``USER: <image>\\n... ASSISTANT:`` prompt), the widths and depths are tiny, and the tokenizer is a byte-level
BPE trained here on a small bundled English text, so everything builds in a few seconds without network access.
Random weights generate garbage text; that is expected.

Example:
    >>> import tempfile
    >>> from adaptive_svdprune.models.llava import load_llava
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = build_tiny_llava(tmp)
    ...     model, processor = load_llava(path)
    >>> model.config.image_seq_length, model.config.vision_config.hidden_size, model.config.text_config.hidden_size
    (576, 32, 64)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["LLAVA_15_CHAT_TEMPLATE", "TINY_VERSION", "build_tiny_llava", "tiny_llava_path"]

#: Bumped whenever the tiny checkpoint changes, so that cached copies are rebuilt.
TINY_VERSION = "v1"

#: The llava-hf LLaVA-1.5 chat template: ``USER: <image>\n{text} ASSISTANT:``.
LLAVA_15_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_IMAGE_SIZE, _PATCH_SIZE = 336, 14  # LLaVA-1.5: (336 // 14) ** 2 = 576 image tokens
_VOCAB_SIZE = 1000  # BPE target before the two added special tokens
_SPECIALS = ("<unk>", "<s>", "</s>")


def _train_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from adaptive_svdprune.assets import corpus_lines

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=list(_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    # Like LLaVA-1.5 (32000, 32001): "<image>" and "<pad>" come after the trained vocabulary.
    tok.add_special_tokens(["<image>", "<pad>"])
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
        model_max_length=4096,
    )
    fast.save_pretrained(path)
    return fast


def build_tiny_llava(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a tiny random-init LLaVA-1.5-shaped checkpoint, tokenizer and processor to ``path``.

    Sizes: CLIP vision tower hidden 32, 3 layers, 4 heads (336 px, patch 14, 577 positions); Llama text model
    hidden 64, 3 layers (so FastV's default ``fastv_layer=2`` applies), 4 query / 2 key-value heads;
    vocabulary ~900 byte-level BPE tokens plus ``<image>`` and ``<pad>``. The same ``seed`` gives the same
    weights. Loads with :func:`adaptive_svdprune.models.llava.load_llava`.

    Args:
        path: output folder (created if needed).
        seed: seed of the weight initialisation (the global RNG state is left untouched).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(path)
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        image_size=_IMAGE_SIZE, patch_size=_PATCH_SIZE, projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
        # NOTE: a wide init (std 0.5, not 0.02) makes the random model's greedy output depend on the image and
        # the question instead of repeating one token, which is what the equality tests need to be meaningful.
        initializer_range=0.5,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=image_token_id,
        vision_feature_layer=-2, vision_feature_select_strategy="default",
        image_seq_length=(_IMAGE_SIZE // _PATCH_SIZE) ** 2, projector_hidden_act="gelu",
    )
    save_seeded(LlavaForConditionalGeneration, config, path, seed, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    crop = _IMAGE_SIZE
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": crop}, crop_size={"height": crop, "width": crop},
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=_PATCH_SIZE,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_15_CHAT_TEMPLATE,
    )
    processor.save_pretrained(path)
    return path


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _default_cache_root() -> Path:
    if root := os.environ.get("ADAPTIVE_SVDPRUNE_CACHE"):
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "adaptive-svdprune"


def tiny_llava_path(cache_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> Path:
    """Folder of the tiny checkpoint, built once and reused (``<cache>/tiny-llava-<version>-seed<seed>``).

    ``cache_dir`` defaults to ``$ADAPTIVE_SVDPRUNE_CACHE``, else ``$XDG_CACHE_HOME/adaptive-svdprune``, else
    ``~/.cache/adaptive-svdprune``. The build goes to a temporary sibling folder that is renamed into place, so
    concurrent callers never see a half-written checkpoint.
    """
    return cached_checkpoint(f"tiny-llava-{TINY_VERSION}-seed{seed}", lambda path: build_tiny_llava(path, seed=seed),
                             cache_dir)


def cached_checkpoint(name: str, build: Callable[[Path], object],
                      cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache>/<name>``, built by ``build(folder)`` the first time (every tiny checkpoint is cached this way).

    The build goes to a temporary sibling folder that is renamed into place, so concurrent callers never see a
    half-written checkpoint; ``cache_dir`` defaults as for :func:`tiny_llava_path`.
    """
    root = Path(cache_dir) if cache_dir is not None else _default_cache_root()
    target = root / name
    if (target / "config.json").is_file() and (target / "processor_config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first: keep its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def save_seeded(model_class: Any, config: Any, path: Path, seed: int, **generation: Any) -> Any:
    """Instantiate ``model_class(config)`` with weights from ``seed`` (the global RNG is left untouched), give it
    a greedy 16-token generation config (``generation`` holds its token ids) and save it quietly to ``path``."""
    from transformers import GenerationConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config).eval()
    model.generation_config = GenerationConfig(**generation, do_sample=False, max_new_tokens=16)
    with _quiet_progress():
        model.save_pretrained(path)
    return model
