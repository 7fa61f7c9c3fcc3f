"""Models addressable by a short name on the command line and in configs (``--model tiny``).

A name maps to a function returning the local checkpoint folder (built on first use, cached afterwards); any
other string is passed through as a hub id or a folder. Registering a name never edits the callers.

Example:
    >>> "tiny" in MODEL_NAMES
    True
    >>> resolve_model_path("llava-hf/llava-1.5-7b-hf")
    'llava-hf/llava-1.5-7b-hf'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["MODEL_NAMES", "model_names_help", "register_model_name", "resolve_model_path"]


def _tiny() -> Path:
    from adaptive_svdprune.models.tiny import tiny_llava_path

    return tiny_llava_path()


def _shapes() -> Path:
    from adaptive_svdprune.shapes.model import shapes_llava_path

    return shapes_llava_path()


def _tiny_qwen() -> Path:
    from adaptive_svdprune.models.tiny_qwen import tiny_qwen_vl_path

    return tiny_qwen_vl_path()


def _tiny_next() -> Path:
    from adaptive_svdprune.models.tiny_next import tiny_next_path

    return tiny_next_path()


def _tiny_onevision() -> Path:
    from adaptive_svdprune.models.tiny_next import tiny_onevision_path

    return tiny_onevision_path()


#: Short name -> zero-argument function giving the checkpoint folder.
MODEL_NAMES: dict[str, Callable[[], Path | str]] = {"tiny": _tiny, "shapes": _shapes, "tiny-qwen2.5-vl": _tiny_qwen}
MODEL_NAMES.update({"tiny-next": _tiny_next, "tiny-onevision": _tiny_onevision})


def register_model_name(name: str, path_fn: Callable[[], Path | str]) -> None:
    """Make ``name`` usable wherever a model id is accepted (``--model NAME``)."""
    MODEL_NAMES[name] = path_fn


def resolve_model_path(name: str) -> str:
    """The checkpoint folder for a registered short name; any other id or path unchanged."""
    fn = MODEL_NAMES.get(name)
    return str(fn()) if fn is not None else name


def model_names_help() -> str:
    """``'tiny', 'shapes'`` style list of the registered names, for ``--help`` texts and errors."""
    return ", ".join(repr(n) for n in MODEL_NAMES)
