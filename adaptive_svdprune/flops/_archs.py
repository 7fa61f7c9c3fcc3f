"""Architecture configs for FLOPs accounting: bundled LLaVA-1.5 configs, local folders and hub ids.

The bundled JSON files under ``adaptive_svdprune/archs/`` hold the public ``config.json`` values of
``llava-hf/llava-1.5-7b-hf`` and ``llava-hf/llava-1.5-13b-hf`` (written out in full, so they do not depend on
the defaults of the installed transformers), so FLOPs can be counted offline with no weights.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from typing import Any

__all__ = ["bundled_archs", "image_token_count", "load_arch_config"]

_ARCH_PACKAGE = "adaptive_svdprune"
_ARCH_FOLDER = "archs"


def bundled_archs() -> list[str]:
    """Names of the architecture configs shipped with the package.

    Example:
        >>> bundled_archs()
        ['llava-1.5-13b', 'llava-1.5-7b', 'llava-onevision-7b', 'llava-v1.6-7b', 'qwen2.5-vl-7b']
    """
    folder = resources.files(_ARCH_PACKAGE) / _ARCH_FOLDER
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


@functools.lru_cache(maxsize=16)
def _load_bundled(name: str) -> Any:
    from transformers import AutoConfig

    text = (resources.files(_ARCH_PACKAGE) / _ARCH_FOLDER / f"{name}.json").read_text(encoding="utf-8")
    values = json.loads(text)
    return AutoConfig.for_model(**values)


def load_arch_config(model: Any) -> Any:
    """Resolve ``model`` to a LLaVA-style config (one with ``vision_config`` and ``text_config``).

    Args:
        model: a bundled name (see :func:`bundled_archs`), a local folder or hub id with a ``config.json``
            (read with ``AutoConfig.from_pretrained``), or a config object, returned as is.

    Returns:
        The config (a ``transformers`` ``LlavaConfig`` for the bundled names). Bundled configs are cached:
        treat them as read-only.

    Raises:
        ValueError: for an unknown name, or a config without ``vision_config``/``text_config``.

    Example:
        >>> cfg = load_arch_config("llava-1.5-7b")
        >>> cfg.text_config.hidden_size, cfg.vision_config.patch_size, cfg.vision_feature_layer
        (4096, 14, -2)
    """
    if isinstance(model, str):
        if model in bundled_archs():
            config = _load_bundled(model)
        elif os.path.isdir(model) or "/" in model:
            from transformers import AutoConfig

            try:
                config = AutoConfig.from_pretrained(model)
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"could not load a config from {model!r} ({err}); bundled architectures: "
                    f"{', '.join(bundled_archs())}"
                ) from err
        else:
            raise ValueError(
                f"unknown model {model!r}: bundled architectures are {', '.join(bundled_archs())}; "
                "a local folder or hub id (owner/name) with a config.json also works"
            )
    else:
        config = model
    if getattr(config, "vision_config", None) is None or getattr(config, "text_config", None) is None:
        raise ValueError(f"{type(config).__name__} is not a LLaVA-style config: it needs vision_config and text_config")
    return config


def image_token_count(config: Any) -> int:
    """Vision tokens one image gives the projector: ``(image_size // patch_size) ** 2`` (+1 with CLS kept).

    The LLaVA-1.5 ``"default"`` select strategy drops the CLS token; ``"full"`` keeps it where the tower has one
    (CLIP; a SigLIP tower has none, so "full" is 729 tokens at 384 px). For the anyres
    families (LLaVA-NeXT, OneVision) it is the positions of a 672 x 672 image, newlines included (see
    :func:`~adaptive_svdprune.flops._anyres.anyres_geometry` for other sizes).

    Example:
        >>> image_token_count(load_arch_config("llava-1.5-7b"))
        576
    """
    from adaptive_svdprune.flops._anyres import anyres_geometry, is_anyres

    if is_anyres(config):
        return anyres_geometry(config).positions
    vision = config.vision_config
    if getattr(vision, "image_size", None) is None:  # Qwen2(.5)-VL: native resolution
        raise ValueError(f"{config.model_type!r} models take images at native resolution, so the token count "
                         "depends on the image size: use qwen_vl_flops(config, image_size=(height, width))")
    patches = (int(vision.image_size) // int(vision.patch_size)) ** 2
    # "full" keeps the CLS token only where the tower has one: CLIP does, SigLIP (LLaVA-OneVision's) does not
    # (27 x 27 = 729 tokens at 384 px, patch 14)
    keeps_cls = (getattr(config, "vision_feature_select_strategy", "default") == "full"
                 and getattr(vision, "model_type", None) == "clip_vision_model")
    return patches + (1 if keeps_cls else 0)
