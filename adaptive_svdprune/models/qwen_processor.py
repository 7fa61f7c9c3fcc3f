"""Qwen2-VL / Qwen2.5-VL processors for images and text where torchvision cannot be imported.

``Qwen2_5_VLProcessor`` declares a video processor, and transformers checks its class even when it is ``None``;
that check needs the torchvision-backed video processors, which fail next to a CPU torch (DESIGN.md, section 4).
The image-only processor is the same class without the video slot: prompts, ``<|image_pad|>`` expansion,
``mm_token_type_ids`` and pixel values are exactly the stock processor's. Folders saved with it name
``Qwen2_5_VLProcessor``, so users with a working torchvision load the stock processor unchanged.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from adaptive_svdprune.models.processors import name_processor_class

__all__ = ["image_only_processor", "load_qwen_vl_processor"]


@functools.cache
def _image_only_processor_class() -> Any:
    from transformers import Qwen2_5_VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
        """``Qwen2_5_VLProcessor`` without the video processor (which needs torchvision)."""

        def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None,
                     **kwargs: Any) -> None:
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

        def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
            """Save as the stock processor would, naming ``Qwen2_5_VLProcessor`` as the class to load."""
            out = super().save_pretrained(save_directory, *args, **kwargs)
            name_processor_class(save_directory, "Qwen2_5_VLProcessor")
            return out

    return Qwen2_5_VLImageOnlyProcessor


def image_only_processor(image_processor: Any, tokenizer: Any, chat_template: str | None = None) -> Any:
    """A Qwen2(.5)-VL processor for images and text only, usable where torchvision does not import.

    It is ``Qwen2_5_VLProcessor`` (same token expansion, ``mm_token_type_ids`` and chat template handling) without
    the video processor attribute; ``image_processor`` is typically the PIL ``Qwen2VLImageProcessorPil``.
    """
    return _image_only_processor_class()(image_processor, tokenizer, chat_template=chat_template)


def load_qwen_vl_processor(name_or_path: str | os.PathLike[str]) -> Any:
    """The stock ``AutoProcessor`` where torchvision imports, else :func:`image_only_processor` from the folder."""
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        from transformers import AutoProcessor

        try:
            return AutoProcessor.from_pretrained(name_or_path)
        except (OSError, TypeError, ValueError):  # a folder without a video processor config (tiny checkpoint)
            pass
    return _image_only_processor_class().from_pretrained(name_or_path)
