"""Image geometry of "anyres" models (LLaVA-NeXT, LLaVA-OneVision) for FLOPs accounting.

An anyres image costs the vision tower once per view (a base view plus a grid of high-resolution crops picked
from ``image_grid_pinpoints`` by the image's size), and occupies ``tokens + newlines`` language-model positions:
the base view's tokens, then the unpadded crop grid row by row, each row closed by a newline (OneVision also
down-samples grids larger than ``anyres_max_N`` base views). The counts follow the stock processors'
``_get_number_of_features`` exactly; :func:`anyres_geometry` recomputes them from the config alone.

Example:
    >>> from adaptive_svdprune.flops import load_arch_config
    >>> g = anyres_geometry(load_arch_config("llava-v1.6-7b"), (672, 672))
    >>> g.views, g.tokens, g.newlines, g.positions
    (5, 2880, 48, 2928)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ANYRES_MODEL_TYPES", "DEFAULT_ANYRES_IMAGE_SIZE", "AnyresGeometry", "anyres_geometry", "is_anyres"]

#: ``model_type`` of the anyres families.
ANYRES_MODEL_TYPES: tuple[str, ...] = ("llava_next", "llava_onevision")
#: ``(height, width)`` used when no image size is given: LLaVA-NeXT's largest square grid (2 x 2 crops of 336).
DEFAULT_ANYRES_IMAGE_SIZE: tuple[int, int] = (672, 672)


@dataclass(frozen=True)
class AnyresGeometry:
    """What one anyres image costs in views and positions.

    Attributes:
        views: vision-tower passes (base view + crops).
        tokens: image tokens the language model receives (base view + unpadded, possibly down-sampled grid).
        newlines: newline positions (one per grid row).
    """

    views: int
    tokens: int
    newlines: int

    @property
    def positions(self) -> int:
        """Language-model positions of the unpruned image: ``tokens + newlines``."""
        return self.tokens + self.newlines


def is_anyres(config: Any) -> bool:
    """True for LLaVA-NeXT and LLaVA-OneVision configs."""
    return getattr(config, "model_type", None) in ANYRES_MODEL_TYPES


def _base_tokens(config: Any, side: int) -> int:
    # "full" keeps a CLS token apart from the patches only where the tower has one (CLIP, not SigLIP)
    vision_type = getattr(config.vision_config, "model_type", "")
    keeps_cls = config.vision_feature_select_strategy == "full" and vision_type == "clip_vision_model"
    return side * side + (1 if keeps_cls else 0)


def anyres_geometry(config: Any, image_size: tuple[int, int] = DEFAULT_ANYRES_IMAGE_SIZE) -> AnyresGeometry:
    """Views, tokens and newlines of one ``(height, width)`` image, as the stock processor counts them.

    Raises:
        ValueError: for a config that is not anyres, or a non-positive image size.
    """
    from transformers.image_processing_utils import select_best_resolution

    if not is_anyres(config):
        raise ValueError(f"anyres_geometry needs a LLaVA-NeXT or OneVision config, got model_type "
                         f"{getattr(config, 'model_type', None)!r}")
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be a positive (height, width), got {image_size!r}")
    vision = config.vision_config
    crop, side = int(vision.image_size), int(vision.image_size) // int(vision.patch_size)
    best_height, best_width = select_best_resolution((height, width), config.image_grid_pinpoints)
    grid_rows, grid_cols = best_height // crop, best_width // crop
    rows, cols = side * grid_rows, side * grid_cols
    if width / height > cols / rows:
        new_rows = int(round(height * (cols / width), 7))
        rows -= 2 * ((rows - new_rows) // 2)
    else:
        new_cols = int(round(width * (rows / height), 7))
        cols -= 2 * ((cols - new_cols) // 2)
    aspect = getattr(config, "vision_aspect_ratio", None)
    if config.model_type == "llava_onevision" and aspect:
        max_views = int(aspect.removeprefix("anyres_max_"))
        ratio = math.sqrt(rows * cols / (max_views * side**2))
        if ratio > 1.1:
            rows, cols = int(rows // ratio), int(cols // ratio)
    return AnyresGeometry(views=1 + grid_rows * grid_cols, tokens=_base_tokens(config, side) + rows * cols,
                          newlines=rows)
