"""One entry point for every model family: ``prune_model(model, config)`` and ``load_model(name_or_path)``.

A family is registered under the class name of its stock transformers model; :func:`prune_model` looks the
instance's class up and hands it to that family's wrapper, so adding a family (say Qwen2.5-VL) registers a factory
and never edits this module or its callers.

===========================================  =====================================================================
model class                                  wrapper
===========================================  =====================================================================
``LlavaForConditionalGeneration``            :class:`~adaptive_svdprune.models.llava.PrunedLlava` (LLaVA-1.5)
``LlavaNextForConditionalGeneration``        :class:`~adaptive_svdprune.models.llava_next.PrunedLlavaNext`
``LlavaOnevisionForConditionalGeneration``   :class:`~adaptive_svdprune.models.llava_next.PrunedLlavaOnevision`
``Qwen2VLForConditionalGeneration``          :class:`~adaptive_svdprune.models.qwen_vl.PrunedQwenVL`
``Qwen2_5_VLForConditionalGeneration``       :class:`~adaptive_svdprune.models.qwen_vl.PrunedQwenVL`
===========================================  =====================================================================

Example:
    >>> "LlavaNextForConditionalGeneration" in supported_model_classes()
    True
    >>> import torch
    >>> prune_model(torch.nn.Linear(2, 2), None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: prune_model does not support Linear; supported model classes: LlavaForConditionalGeneration, ...
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from adaptive_svdprune.models.anyres import SPLITS, Split
from adaptive_svdprune.pruning.config import SelectorConfig

__all__ = ["ANYRES_MODEL_CLASSES", "ProcessorLoader", "WrapperFactory", "check_split", "load_model",
           "model_class_name", "prune_model", "register_family", "supported_model_classes"]

#: Model classes whose images are a base view plus crops, where ``split="per_view"`` differs from ``"global"``.
ANYRES_MODEL_CLASSES: tuple[str, ...] = ("LlavaNextForConditionalGeneration", "LlavaOnevisionForConditionalGeneration")

#: ``factory(model, config, pad_token_id=None, split="global") -> wrapper``
WrapperFactory = Callable[..., Any]
#: ``load_processor(path) -> processor``
ProcessorLoader = Callable[[str], Any]


@dataclass(frozen=True)
class _Family:
    wrap: WrapperFactory
    load_processor: ProcessorLoader | None


_FAMILIES: dict[str, _Family] = {}


def register_family(
    model_class_name: str, load_processor: ProcessorLoader | None = None
) -> Callable[[WrapperFactory], WrapperFactory]:
    """Decorator registering the wrapper factory for models of class ``model_class_name``.

    Args:
        model_class_name: the stock transformers class, e.g. ``"LlavaNextForConditionalGeneration"``.
        load_processor: ``load_processor(path)`` for :func:`load_model` (default: ``AutoProcessor``).
    """

    def wrap(factory: WrapperFactory) -> WrapperFactory:
        _FAMILIES[model_class_name] = _Family(factory, load_processor)
        return factory

    return wrap


@register_family("LlavaForConditionalGeneration")
def _llava(model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None, split: Split = "global") -> Any:
    from adaptive_svdprune.models.llava import PrunedLlava

    return PrunedLlava(model, config, pad_token_id=pad_token_id)  # one view: both splits are the same


@register_family("LlavaNextForConditionalGeneration")
def _llava_next(model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None,
                split: Split = "global") -> Any:
    from adaptive_svdprune.models.llava_next import PrunedLlavaNext

    return PrunedLlavaNext(model, config, pad_token_id=pad_token_id, split=split)


def _onevision_processor(path: str) -> Any:
    from transformers import AutoProcessor, ProcessorMixin
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        try:
            processor = AutoProcessor.from_pretrained(path)
            if isinstance(processor, ProcessorMixin):
                return processor
        except (ImportError, RuntimeError, ValueError):
            pass
    # NOTE: OneVision's AutoProcessor also builds a torchvision video processor; where torchvision cannot be
    # imported (a CPU torch next to a CUDA torchvision wheel) the same processor is built without it.
    from adaptive_svdprune.models.processors import ImageOnlyOnevisionProcessor

    return ImageOnlyOnevisionProcessor.from_pretrained(path)


@register_family("LlavaOnevisionForConditionalGeneration", load_processor=_onevision_processor)
def _llava_onevision(model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None,
                     split: Split = "global") -> Any:
    from adaptive_svdprune.models.llava_next import PrunedLlavaOnevision

    return PrunedLlavaOnevision(model, config, pad_token_id=pad_token_id, split=split)


def _qwen_processor(path: str) -> Any:
    from adaptive_svdprune.models.qwen_vl import load_qwen_vl_processor

    return load_qwen_vl_processor(path)


def _qwen_vl(model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None,
             split: Split = "global") -> Any:
    from adaptive_svdprune.models.qwen_vl import prune_qwen_vl

    return prune_qwen_vl(model, config, pad_token_id=pad_token_id)  # one view per image: both splits agree


for _name in ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"):
    register_family(_name, load_processor=_qwen_processor)(_qwen_vl)


def supported_model_classes() -> list[str]:
    """Class names :func:`prune_model` and :func:`load_model` accept, in registration order."""
    return list(_FAMILIES)


def _unsupported(what: str) -> str:
    return f"{what}; supported model classes: {', '.join(supported_model_classes())}"


def prune_model(model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None,
                split: Split = "global") -> Any:
    """Wrap a loaded model so that each image enters its language model with ``K_i`` positions.

    Nothing in ``model`` (or its class) is changed; wrappers with different configs can share one model.

    Args:
        model: a stock transformers model of a supported class (see :func:`supported_model_classes`).
        config: :class:`SVDPruneConfig` or :class:`BaselineConfig`; ``budget`` counts language-model positions
            per image (anyres newlines included).
        pad_token_id: id used for re-padding (default: from the model configs; its value is never attended).
        split: anyres families: ``"global"`` (one selection over base view and crops) or ``"per_view"`` (budget
            shared across views in proportion to their token counts); LLaVA-1.5 has one view, where both agree.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    family = _FAMILIES.get(type(model).__name__)
    if family is None:
        raise TypeError(_unsupported(f"prune_model does not support {type(model).__name__}"))
    return family.wrap(model, config, pad_token_id=pad_token_id, split=split)


def check_split(split: object, model_class: str, flag: str = "split") -> Split:
    """``split`` for a model of class ``model_class``: ``"per_view"`` only for the anyres families.

    ``prune_model`` itself accepts both splits for every family (one view: they agree); user-facing settings
    (``EvalConfig.anyres_split``, ``--anyres-split``) are checked here, so that asking for per-view selection on
    a model without views is an error instead of a silent no-op.

    Example:
        >>> check_split("per_view", "LlavaNextForConditionalGeneration")
        'per_view'
        >>> check_split("per_view", "LlavaForConditionalGeneration", "anyres_split")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: anyres_split 'per_view' applies to LLaVA-NeXT/OneVision (anyres) models only; ...
    """
    if split not in SPLITS:
        raise ValueError(f"{flag} must be one of {list(SPLITS)}, got {split!r}")
    if split != "global" and model_class not in ANYRES_MODEL_CLASSES:
        raise ValueError(f"{flag} {split!r} applies to LLaVA-NeXT/OneVision (anyres) models only; {model_class} has "
                         "one view per image")
    return split  # type: ignore[return-value]


def model_class_name(name_or_path: str | os.PathLike[str]) -> str:
    """The supported model class a checkpoint loads as, read from its config alone (no weights).

    Raises:
        ValueError: the class is not supported (naming it and the supported ones).
    """
    from adaptive_svdprune.models.names import resolve_model_path

    return _architecture(resolve_model_path(str(name_or_path)))


def _architecture(path: str) -> str:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    config = AutoConfig.from_pretrained(path)
    architectures = getattr(config, "architectures", None) or []
    known = [a for a in architectures if a in _FAMILIES]
    if known:
        return known[0]
    mapped = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.get(config.model_type)
    if mapped in _FAMILIES:
        return str(mapped)
    found = architectures[0] if architectures else mapped or config.model_type
    raise ValueError(_unsupported(f"{path}: model class {found} (model_type {config.model_type!r}) is not supported"))


def load_model(
    name_or_path: str | os.PathLike[str],
    dtype: torch.dtype | Literal["auto"] | None = None,
    device: str | torch.device | None = None,
    **from_pretrained_kwargs: Any,
) -> tuple[Any, Any]:
    """Load a model of any supported family and its processor (a hub id, a folder or a short name like ``tiny-next``).

    The class comes from the checkpoint's ``config.json`` (its ``architectures``, else its ``model_type`` through
    ``AutoModelForImageTextToText``'s table); an unsupported one is a ``ValueError`` naming it and the supported
    ones, raised before any weight is read.

    Args:
        name_or_path: e.g. ``"llava-hf/llava-v1.6-vicuna-7b-hf"``, a ``save_pretrained`` folder, or a registered
            name (:data:`adaptive_svdprune.models.names.MODEL_NAMES`).
        dtype: weight dtype (``None``: as saved).
        device: where to put the model (``None``: CPU).
        **from_pretrained_kwargs: passed to ``from_pretrained``.

    Returns:
        ``(model, processor)``; the model is in eval mode and the tokenizer pads on the left.
    """
    import transformers

    from adaptive_svdprune.models.names import resolve_model_path

    path = resolve_model_path(str(name_or_path))
    architecture = _architecture(path)
    kwargs = dict(from_pretrained_kwargs)
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = getattr(transformers, architecture).from_pretrained(path, **kwargs).eval()
    if device is not None:
        model = model.to(device)
    loader = _FAMILIES[architecture].load_processor
    if loader is None:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(path)
    else:
        processor = loader(path)
    processor.tokenizer.padding_side = "left"
    return model, processor
