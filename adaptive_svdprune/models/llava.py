"""Plug SVD-Prune (or a baseline) into a stock Hugging Face LLaVA model, without patching anything.

``prune_llava(model, config)`` wraps one ``LlavaForConditionalGeneration`` *instance*. For every call the
wrapper runs the vision tower, selects ``K_i`` tokens per image on exactly the features the model would hand its
``multi_modal_projector``, projects only those, collapses each image's 576 placeholders to ``K_i``, re-pads the
batch on the left and calls the model's own ``generate``/``forward`` with ``inputs_embeds``. The model itself is
never modified, so several wrappers with different configs can share it, and it still behaves as stock.

Example:
    >>> from PIL import Image
    >>> from adaptive_svdprune.assets import demo_image_path
    >>> from adaptive_svdprune.models.tiny import tiny_llava_path
    >>> from adaptive_svdprune.pruning.config import SVDPruneConfig
    >>> model, processor = load_llava(tiny_llava_path())
    >>> pruned = prune_llava(model, SVDPruneConfig(variance_threshold=0.9, budget=32))
    >>> inputs = processor(images=Image.open(demo_image_path()), text="USER: <image>\\nWhat is it? ASSISTANT:",
    ...                    return_tensors="pt")
    >>> new_tokens = pruned.generate(**inputs, max_new_tokens=4, min_new_tokens=4)
    >>> new_tokens.shape, pruned.last_kept_counts
    (torch.Size([1, 4]), [32])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from adaptive_svdprune.models.fastv import fastv_decode, fastv_prefill
from adaptive_svdprune.models.placeholders import collapse_image_placeholders, images_per_prompt
from adaptive_svdprune.models.vision import VisionFeatures, extract_vision_features
from adaptive_svdprune.pruning.config import BaselineConfig, SelectorConfig, SVDPruneConfig, select_tokens
from adaptive_svdprune.pruning.selection import TokenSelection, gather_kept

__all__ = ["PreparedInputs", "PrunedLlava", "VisionFeatures", "load_llava", "prune_llava"]

_KEEP_ALL = BaselineConfig("none")
_FASTV_GENERATE_KEYS = frozenset({"max_new_tokens", "min_new_tokens", "eos_token_id", "pad_token_id", "do_sample",
                                  "num_beams"})


def load_llava(
    name_or_path: str | os.PathLike[str],
    dtype: torch.dtype | Literal["auto"] | None = None,
    device: str | torch.device | None = None,
    **from_pretrained_kwargs: Any,
) -> tuple[Any, Any]:
    """Load a LLaVA model and its processor from a hub id or a local folder.

    Args:
        name_or_path: e.g. ``"llava-hf/llava-1.5-7b-hf"`` or a folder written by ``save_pretrained`` (such as
            :func:`adaptive_svdprune.models.tiny.build_tiny_llava`).
        dtype: weight dtype (``None``: as saved, float32 for the tiny model).
        device: where to put the model (``None``: CPU).
        **from_pretrained_kwargs: passed to ``LlavaForConditionalGeneration.from_pretrained``.

    Returns:
        ``(model, processor)``; the model is in eval mode and the tokenizer pads on the left.
    """
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    kwargs = dict(from_pretrained_kwargs)
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = LlavaForConditionalGeneration.from_pretrained(name_or_path, **kwargs).eval()
    if device is not None:
        model = model.to(device)
    processor = AutoProcessor.from_pretrained(name_or_path)
    processor.tokenizer.padding_side = "left"
    return model, processor


@dataclass
class PreparedInputs:
    """What the language model receives for one batch (see :meth:`PrunedLlava.prepare_inputs`).

    Attributes:
        input_ids: ``(B, L')`` prompt ids with each image's placeholders collapsed to its kept count.
        inputs_embeds: ``(B, L', H)`` embeddings with the projected kept features at the image positions.
        attention_mask: ``(B, L')`` left-padded mask.
        position_ids: ``(B, L')`` positions counted over the real tokens (0 on padding).
        selection: the pre-projector selection, one entry per image.
        image_spans: per prompt, ``(start, length)`` of each image's tokens in ``input_ids``.
    """

    input_ids: torch.Tensor
    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    selection: TokenSelection
    image_spans: list[list[tuple[int, int]]]


def check_selector_config(config: object) -> SelectorConfig:
    """``config`` itself when it is a selector config (SVD-Prune or a baseline); ``TypeError`` otherwise."""
    if not isinstance(config, (SVDPruneConfig, BaselineConfig)):
        raise TypeError(f"config must be an SVDPruneConfig or a BaselineConfig, got {type(config).__name__}")
    return config


def default_pad_id(model: Any) -> int:
    """The model's pad token id (from its config, text config or generation config), else 0.

    The value never matters for the outputs: padded positions are masked out.
    """
    for source in (model.config, model.config.text_config, model.generation_config):
        pad = getattr(source, "pad_token_id", None)
        if isinstance(pad, int):
            return pad
    return 0


class PrunedLlava:
    """A LLaVA model whose images enter the language model with ``K_i`` tokens each (see :func:`prune_llava`).

    Attributes:
        model: the wrapped ``LlavaForConditionalGeneration`` (unchanged, shared).
        config: the selector config; may be replaced between calls.
        last_selection: the :class:`TokenSelection` of the last call (for FastV, the tokens it kept in the LLM).
        last_kept_counts: kept token count per image of the last call.
        last_inputs: the :class:`PreparedInputs` of the last call.
        last_cache_lengths: prompt positions held in the KV cache per prompt after the last prefill.
    """

    #: processor outputs besides ids, mask and pixels that a family's image path needs (LLaVA-NeXT: image_sizes)
    image_input_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None) -> None:
        self._check_model(model)
        self.model: Any = model
        self.config = config
        self.pad_token_id = pad_token_id if pad_token_id is not None else default_pad_id(model)
        self.last_selection: TokenSelection | None = None
        self.last_kept_counts: list[int] = []
        self.last_inputs: PreparedInputs | None = None
        self.last_cache_lengths: list[int] = []

    @staticmethod
    def _check_model(model: nn.Module) -> None:
        from transformers import LlavaForConditionalGeneration

        if not isinstance(model, LlavaForConditionalGeneration):
            raise TypeError(f"prune_llava needs a LlavaForConditionalGeneration, got {type(model).__name__}")

    def _pop_image_inputs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: kwargs.pop(k) for k in self.image_input_names if k in kwargs}

    @property
    def config(self) -> SelectorConfig:
        return self._config

    @config.setter
    def config(self, value: SelectorConfig) -> None:
        self._config = check_selector_config(value)

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, config={self.config!r})"

    def _needs_cls_attention(self) -> bool:
        return "cls_attention" in self.config.requires

    def vision_features(self, pixel_values: torch.Tensor, cls_attention: bool | None = None) -> VisionFeatures:
        """Pre-projector features ``(N_images, T, D)`` of ``pixel_values``, to cache and pass as ``image_features``.

        Args:
            pixel_values: processor output ``(N_images, 3, H, W)``.
            cls_attention: also compute the CLS attention; ``None``: only when the current config needs it.
        """
        want = self._needs_cls_attention() if cls_attention is None else cls_attention
        return extract_vision_features(self.model, pixel_values, with_cls_attention=want)

    def cache_entries(self, features: VisionFeatures) -> list[dict[str, torch.Tensor]]:
        """One dict of tensors per image of ``features`` (for an on-disk cache; see :meth:`features_from_cache`)."""
        return [{"features": f, **({"cls_attention": features.cls_attention[i]}
                                   if features.cls_attention is not None else {})}
                for i, f in enumerate(features.features)]

    def features_from_cache(self, entries: list[dict[str, torch.Tensor]]) -> VisionFeatures:
        """Inverse of :meth:`cache_entries`, on the model's device (the attention only when every entry has it)."""
        device = self.model.get_input_embeddings().weight.device
        attn = [e["cls_attention"] for e in entries if "cls_attention" in e]
        return VisionFeatures(torch.stack([e["features"] for e in entries]).to(device),
                              torch.stack(attn).to(device) if len(attn) == len(entries) else None)

    def _features(
        self, pixel_values: torch.Tensor | None, image_features: VisionFeatures | torch.Tensor | None
    ) -> VisionFeatures:
        if pixel_values is None and image_features is None:
            raise ValueError("missing pixel_values: pass the processor's pixel_values or cached image_features")
        if pixel_values is not None and image_features is not None:
            raise ValueError("pass either pixel_values or image_features, not both")
        if image_features is None:
            return self.vision_features(pixel_values)  # type: ignore[arg-type]
        if isinstance(image_features, torch.Tensor):
            image_features = VisionFeatures(image_features)
        if not isinstance(image_features, VisionFeatures):
            raise TypeError(f"image_features must be VisionFeatures or a tensor, got {type(image_features).__name__}")
        if self._needs_cls_attention() and image_features.cls_attention is None:
            raise ValueError(
                f"config method {self.config.method!r} needs the CLS attention: cache the features with "
                "vision_features(pixel_values, cls_attention=True)"
            )
        return image_features

    def _select(self, features: VisionFeatures) -> TokenSelection:
        config = _KEEP_ALL if self.config.method == "fastv" else self.config
        context = {"cls_attention": features.cls_attention} if self._needs_cls_attention() else {}
        return select_tokens(features.features, config, **context)  # type: ignore[arg-type]

    @torch.no_grad()
    def prepare_inputs(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: VisionFeatures | torch.Tensor | None = None,
    ) -> PreparedInputs:
        """Select, project and collapse: build the language model's inputs for one batch.

        Args:
            input_ids: ``(B, L)`` processor output (every image already expanded to its placeholders).
            attention_mask: ``(B, L)`` processor output; padding may be on either side.
            pixel_values: ``(N_images, 3, H, W)``; or instead ``image_features`` from :meth:`vision_features`.
            image_features: cached pre-projector features of the same images (a tensor or VisionFeatures).
        """
        if input_ids is None:
            raise ValueError("missing input_ids: pass the processor outputs (input_ids, attention_mask, pixel_values)")
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a (batch, length) tensor, got {got}")
        features = self._features(pixel_values, image_features)
        n_images, tokens = int(features.features.shape[0]), int(features.features.shape[1])
        # Cheap structural checks before any selection work.
        per_prompt = images_per_prompt(input_ids, attention_mask, self.image_token_id, tokens)
        empty = [i for i, n in enumerate(per_prompt) if n == 0]
        if empty:
            raise ValueError(f"prompt(s) {empty} have no image placeholder (<image>, id {self.image_token_id}); "
                             "every prompt needs at least one image")
        if sum(per_prompt) != n_images:
            raise ValueError(f"{n_images} images were given but the prompts hold {sum(per_prompt)} image "
                             f"placeholders ({per_prompt} per prompt)")
        selection = self._select(features)
        device = self.model.get_input_embeddings().weight.device
        new_ids, new_mask = collapse_image_placeholders(
            input_ids.to(device), None if attention_mask is None else attention_mask.to(device), selection.counts,
            self.image_token_id, self.pad_token_id, padding_side="left", tokens_per_image=tokens,
        )
        embeds = self.model.get_input_embeddings()(new_ids)
        kept = gather_kept(features.features.to(device), selection)
        # One projector call on all kept rows: the same row-wise computation as the stock (B*T, D) call.
        projected = self.model.model.multi_modal_projector(torch.cat(kept)).to(embeds.dtype)
        image_mask = (new_ids == self.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(image_mask, projected)
        positions = (new_mask.cumsum(-1) - 1).masked_fill(new_mask == 0, 0)
        spans = self._spans(new_ids, new_mask, per_prompt, selection.counts)
        return PreparedInputs(new_ids, embeds, new_mask, positions, selection, spans)

    def _spans(self, ids: torch.Tensor, mask: torch.Tensor, per_prompt: list[int], counts: list[int]
               ) -> list[list[tuple[int, int]]]:
        spans, image = [], 0
        for row, row_mask, n in zip(ids, mask, per_prompt, strict=True):
            pos = ((row == self.image_token_id) & row_mask.bool()).nonzero().flatten().tolist()
            row_spans, cursor = [], 0
            for c in counts[image : image + n]:
                row_spans.append((pos[cursor] if c else 0, c))
                cursor += c
            spans.append(row_spans)
            image += n
        return spans

    def _record(self, prepared: PreparedInputs, selection: TokenSelection, cache_lengths: list[int]) -> None:
        self.last_inputs = prepared
        self.last_selection = selection
        self.last_kept_counts = selection.counts
        self.last_cache_lengths = cache_lengths

    def _fastv(self, prepared: PreparedInputs) -> Any:
        config = self.config
        assert isinstance(config, BaselineConfig) and config.budget is not None
        result = fastv_prefill(
            self.model.model.language_model, prepared.inputs_embeds, prepared.attention_mask,
            prepared.position_ids, prepared.image_spans, config.budget, config.fastv_layer,
        )
        # images of different lengths (anyres) pad their scores with -inf
        scores = nn.utils.rnn.pad_sequence(result.image_scores, batch_first=True, padding_value=float("-inf")).float()
        selection = TokenSelection(result.kept_image_indices, scores, torch.zeros(scores.shape[0], dtype=torch.long),
                                   method="fastv")
        self._record(prepared, selection, result.attention_mask.sum(-1).tolist())
        return result

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: VisionFeatures | torch.Tensor | None = None,
        **generate_kwargs: Any,
    ) -> Any:
        """Pruned generation; takes the processor outputs plus ``model.generate`` keyword arguments.

        Returns:
            Only the **new** tokens, ``(B, N)`` (rows that stop early are padded with the pad id), as
            ``model.generate`` does when given ``inputs_embeds``; decode them with
            ``processor.batch_decode(tokens, skip_special_tokens=True)``. With ``return_dict_in_generate=True``
            the ``generate`` output object is returned as is. FastV supports greedy decoding only.
        """
        prepared = self.prepare_inputs(input_ids, attention_mask, pixel_values, image_features,
                                       **self._pop_image_inputs(generate_kwargs))
        if self.config.method == "fastv":
            unknown = sorted(set(generate_kwargs) - _FASTV_GENERATE_KEYS)
            if unknown:
                raise ValueError(f"FastV generation supports {sorted(_FASTV_GENERATE_KEYS)}, got {unknown}")
            if generate_kwargs.get("do_sample") or generate_kwargs.get("num_beams", 1) != 1:
                raise ValueError("FastV generation is greedy only: do_sample must be False and num_beams 1")
            gen = self.model.generation_config
            result = self._fastv(prepared)
            return fastv_decode(
                self.model, result,
                max_new_tokens=generate_kwargs.get("max_new_tokens") or gen.max_new_tokens or 20,
                eos_token_id=generate_kwargs.get("eos_token_id", gen.eos_token_id),
                pad_token_id=generate_kwargs.get("pad_token_id", self.pad_token_id),
                min_new_tokens=generate_kwargs.get("min_new_tokens") or 0,
            )
        self._record(prepared, prepared.selection, prepared.attention_mask.sum(-1).tolist())
        generate_kwargs.setdefault("pad_token_id", self.pad_token_id)
        return self.model.generate(
            inputs_embeds=prepared.inputs_embeds, attention_mask=prepared.attention_mask, **generate_kwargs
        )

    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: VisionFeatures | torch.Tensor | None = None,
        **forward_kwargs: Any,
    ) -> Any:
        """Pruned forward pass (scoring); returns the model output over the collapsed sequence.

        The logits have one row per position of ``last_inputs.input_ids`` (left padded, image runs collapsed,
        so text positions keep their order and the prompt end stays at the right edge). With FastV the rows
        are the positions kept in the language model. ``forward_kwargs`` go to the model (``use_cache``,
        ``logits_to_keep``, ...).
        """
        from transformers.models.llava.modeling_llava import LlavaCausalLMOutputWithPast

        prepared = self.prepare_inputs(input_ids, attention_mask, pixel_values, image_features,
                                       **self._pop_image_inputs(forward_kwargs))
        if self.config.method == "fastv":
            result = self._fastv(prepared)
            keep = forward_kwargs.get("logits_to_keep", 0)
            hidden = result.hidden_states[:, -keep:] if isinstance(keep, int) and keep else result.hidden_states
            return LlavaCausalLMOutputWithPast(logits=self.model.lm_head(hidden), cache=result.cache)
        self._record(prepared, prepared.selection, prepared.attention_mask.sum(-1).tolist())
        return self.model(
            inputs_embeds=prepared.inputs_embeds, attention_mask=prepared.attention_mask,
            position_ids=prepared.position_ids, **forward_kwargs,
        )

    __call__ = forward


def prune_llava(model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None) -> PrunedLlava:
    """Wrap a ``LlavaForConditionalGeneration`` instance so that each image keeps ``K_i`` tokens.

    Nothing in ``model`` (or its class) is changed; wrappers with different configs can share one model.

    Args:
        model: a loaded LLaVA model (e.g. from :func:`load_llava`).
        config: :class:`SVDPruneConfig` or :class:`BaselineConfig` (``fastv`` prunes inside the LLM).
        pad_token_id: id used for re-padding (default: from the model configs; its value is never attended).
    """
    return PrunedLlava(model, config, pad_token_id=pad_token_id)
