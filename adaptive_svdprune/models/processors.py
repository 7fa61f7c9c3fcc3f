"""A LLaVA-OneVision processor for images only, for environments where torchvision cannot be imported.

``LlavaOnevisionProcessor`` declares a video processor, and transformers checks its class even when it is
``None``; that check imports the torchvision-backed video processors and fails next to a CPU torch with a CUDA
torchvision (DESIGN.md, section 4). :class:`ImageOnlyOnevisionProcessor` is the same class without the video
slot: prompts, image placeholders and pixel values are exactly the stock processor's. Checkpoints saved with it
still name ``LlavaOnevisionProcessor``, so users with a working torchvision load the stock processor unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import LlavaOnevisionProcessor

__all__ = ["ImageOnlyOnevisionProcessor", "name_processor_class"]



def name_processor_class(save_directory: str | os.PathLike[str], class_name: str) -> None:
    """Record ``class_name`` as the ``processor_class`` of a saved processor, so that ``AutoProcessor`` loads the
    stock class where its dependencies (torchvision) import, although an image-only stand-in wrote the folder."""
    file = Path(save_directory) / "processor_config.json"
    if file.is_file():
        data = json.loads(file.read_text())
        data["processor_class"] = class_name
        file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

class ImageOnlyOnevisionProcessor(LlavaOnevisionProcessor):
    """``LlavaOnevisionProcessor`` with an image processor and a tokenizer, and no video processor."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        num_image_tokens: int | None = None,
        vision_feature_select_strategy: str | None = None,
        chat_template: str | None = None,
        image_token: str = "<image>",
        video_token: str = "<video>",
        vision_aspect_ratio: str = "anyres_max_9",
        **kwargs: Any,
    ) -> None:
        # ProcessorMixin binds positional sub-processors to the attributes named in __init__ (here: image processor
        # and tokenizer), so the None passed for the video processor is dropped instead of checked.
        super().__init__(
            image_processor, tokenizer, None, num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy, chat_template=chat_template,
            image_token=image_token, video_token=video_token, vision_aspect_ratio=vision_aspect_ratio, **kwargs,
        )

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        """Save as the stock processor would, naming ``LlavaOnevisionProcessor`` as the class to load."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        name_processor_class(save_directory, "LlavaOnevisionProcessor")
        return out
