"""Plug SVD-Prune (or a baseline) into a stock Qwen2-VL / Qwen2.5-VL model, without patching anything.

``prune_qwen_vl(model, config)`` wraps one ``Qwen2VLForConditionalGeneration`` or
``Qwen2_5_VLForConditionalGeneration`` *instance*. Two things differ from LLaVA:

* **Native resolution.** Image ``i`` enters the language model as ``T_i = t * (h / m) * (w / m)`` merged tokens
  (``image_grid_thw`` row ``(t, h, w)``, merge size ``m``), so every image has its own token count. Selection runs
  per image on exactly what the model would scatter into the sequence: the merger outputs that
  ``get_image_features`` returns (already in the language model's width, so nothing is projected afterwards).
* **3-D rotary positions (M-RoPE).** Every image token has a (time, height, width) position and the text after an
  image continues from ``max(h, w) / m`` past the image start, not from ``T_i``. The wrapper asks the model for
  the 3-D positions of the *unpruned* prompt (its own ``get_rope_index``) and drops the pruned columns, so a kept
  image token keeps the position it had, and every text token too. The positions go to the model with
  ``inputs_embeds``; ``generate`` extends them by one per new token from the last prompt token, which is where
  the unpruned model continues, and ``model.model.rope_deltas`` is set for the pruned sequence so that a
  cached forward without explicit positions continues there as well.

Budget ``K`` is the number of language-model positions an image keeps; with every token kept the wrapper
reproduces the stock ``generate`` bit for bit. ``cls_attention`` is refused (the vision tower has no CLS token).

Example:
    >>> from adaptive_svdprune.assets import draw_demo_image
    >>> from adaptive_svdprune.models.tiny_qwen import tiny_qwen_vl_path
    >>> from adaptive_svdprune.pruning.config import SVDPruneConfig
    >>> model, processor = load_qwen_vl(tiny_qwen_vl_path())
    >>> pruned = prune_qwen_vl(model, SVDPruneConfig(variance_threshold=0.9, budget=16))
    >>> chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    >>> text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    >>> inputs = processor(images=draw_demo_image("scene"), text=text, return_tensors="pt")
    >>> new_tokens = pruned.generate(**inputs, max_new_tokens=4, min_new_tokens=4)
    >>> new_tokens.shape, pruned.last_kept_counts
    (torch.Size([1, 4]), [16])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from adaptive_svdprune.models.llava import check_selector_config, default_pad_id
from adaptive_svdprune.models.placeholders import image_placeholder_runs
from adaptive_svdprune.models.qwen_features import MergedVisionFeatures, image_pixel_values
from adaptive_svdprune.models.qwen_processor import image_only_processor, load_qwen_vl_processor
from adaptive_svdprune.pruning.config import BaselineConfig, SelectorConfig, select_tokens
from adaptive_svdprune.pruning.selection import TokenSelection

__all__ = [
    "QWEN_VL_CLASSES",
    "MergedVisionFeatures",
    "PreparedQwenInputs",
    "PrunedQwenVL",
    "image_only_processor",
    "image_pixel_values",
    "load_qwen_vl",
    "load_qwen_vl_processor",
    "prune_qwen_vl",
]

#: Class names of the stock models this wrapper accepts.
QWEN_VL_CLASSES = ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration")

_KEEP_ALL = BaselineConfig("none")
_FASTV_GENERATE_KEYS = frozenset({"max_new_tokens", "min_new_tokens", "eos_token_id", "pad_token_id", "do_sample",
                                  "num_beams"})


@dataclass
class PreparedQwenInputs:
    """What the language model receives for one batch (see :meth:`PrunedQwenVL.prepare_inputs`).

    Attributes:
        input_ids: ``(B, L')`` prompt ids with each image's placeholders reduced to its kept tokens, left padded.
        inputs_embeds: ``(B, L', H)`` embeddings with the kept merged features at the image positions.
        attention_mask: ``(B, L')`` left-padded mask.
        position_ids: ``(3, B, L')`` M-RoPE (time, height, width) positions: the unpruned prompt's positions of the
            kept columns (0 on padding).
        text_position_ids: ``(B, L')`` sequence index over the real tokens (what ``generate`` uses for the mask).
        rope_deltas: ``(B, 1)`` next position minus real length of the pruned prompt (``model.model.rope_deltas``).
        source_index: ``(B, L')`` column of each kept position in the processor's (unpruned) ``input_ids``;
            -1 on padding.
        selection: the selection, one entry per image.
        image_spans: per prompt, ``(start, length)`` of each image's kept tokens in ``input_ids``.
    """

    input_ids: torch.Tensor
    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    text_position_ids: torch.Tensor
    rope_deltas: torch.Tensor
    source_index: torch.Tensor
    selection: TokenSelection
    image_spans: list[list[tuple[int, int]]]

    @property
    def generate_position_ids(self) -> torch.Tensor:
        """``(4, B, L')``: text positions stacked on the M-RoPE ones, the layout stock ``generate`` builds."""
        return torch.cat([self.text_position_ids[None], self.position_ids], dim=0)


def _check_config(config: object) -> SelectorConfig:
    config = check_selector_config(config)
    if "cls_attention" in config.requires:
        raise ValueError(
            f"method {config.method!r} needs the attention of a CLS token, and the Qwen2(.5)-VL vision tower has "
            "none; use svd, random, uniform, l2norm or fastv"
        )
    return config


def _is_qwen_vl(model: object) -> bool:
    return any(cls.__name__ in QWEN_VL_CLASSES for cls in type(model).__mro__)


class PrunedQwenVL:
    """A Qwen2(.5)-VL model whose images enter the language model with ``K_i`` tokens each.

    See :func:`prune_qwen_vl` and the module docstring. Attributes as in
    :class:`~adaptive_svdprune.models.llava.PrunedLlava`: ``model``, ``config``, ``last_selection``,
    ``last_kept_counts``, ``last_inputs`` (a :class:`PreparedQwenInputs`) and ``last_cache_lengths``.
    """

    def __init__(self, model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None) -> None:
        if not _is_qwen_vl(model):
            raise TypeError(f"prune_qwen_vl needs one of {QWEN_VL_CLASSES}, got {type(model).__name__}")
        self.model: Any = model
        self.config = config
        self.pad_token_id = pad_token_id if pad_token_id is not None else default_pad_id(model)
        self.last_selection: TokenSelection | None = None
        self.last_kept_counts: list[int] = []
        self.last_inputs: PreparedQwenInputs | None = None
        self.last_cache_lengths: list[int] = []

    @property
    def config(self) -> SelectorConfig:
        return self._config

    @config.setter
    def config(self, value: SelectorConfig) -> None:
        self._config = _check_config(value)

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    @property
    def merge_size(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)

    def __repr__(self) -> str:
        return f"PrunedQwenVL({type(self.model).__name__}, config={self.config!r})"

    # -- vision ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def vision_features(self, pixel_values: torch.Tensor, cls_attention: bool | None = None,
                        image_grid_thw: torch.Tensor | None = None) -> MergedVisionFeatures:
        """The merged vision tokens of ``pixel_values``, to cache and pass back as ``image_features``.

        Args:
            pixel_values: processor output ``(sum_i t_i h_i w_i, C * temporal_patch * patch^2)``.
            cls_attention: the LLaVA wrappers' argument, in the same place; ignored: the tower has no CLS token
                (as the anyres wrappers do for towers without one), and ``cls_attention`` configs are refused.
            image_grid_thw: processor output ``(N_images, 3)``; required (the patches alone do not say which
                image they belong to).
        """
        if image_grid_thw is None:
            raise ValueError("missing image_grid_thw: pass it with pixel_values (the processor returns both)")
        grid = self._check_grid(image_grid_thw)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 2:
            got = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"pixel_values must be the processor's (patches, channels) tensor, got {got}")
        patches = int(grid.prod(-1).sum())
        if pixel_values.shape[0] != patches:
            raise ValueError(f"pixel_values has {pixel_values.shape[0]} patches but image_grid_thw "
                             f"{grid.tolist()} needs {patches}")
        device = self.model.model.visual.device
        out = self.model.model.get_image_features(pixel_values.to(device), grid.to(device), return_dict=True)
        return MergedVisionFeatures(list(out.pooler_output), grid.cpu())

    def cache_entries(self, features: MergedVisionFeatures) -> list[dict[str, torch.Tensor]]:
        """One ``{"features": (T_i, D), "grid_thw": (3,)}`` dict per image, for an on-disk feature cache."""
        return features.entries()

    def features_from_cache(self, entries: list[dict[str, torch.Tensor]]) -> MergedVisionFeatures:
        """Inverse of :meth:`cache_entries`."""
        return MergedVisionFeatures.from_entries(entries)

    def _check_grid(self, grid: Any) -> torch.Tensor:
        if not isinstance(grid, torch.Tensor) or grid.dim() != 2 or grid.shape[1] != 3:
            got = tuple(grid.shape) if isinstance(grid, torch.Tensor) else type(grid).__name__
            raise ValueError(f"image_grid_thw must be the processor's (N_images, 3) tensor, got {got}")
        m = self.merge_size
        if bool(((grid[:, 1:] % m) != 0).any()):
            raise ValueError(f"image_grid_thw {grid.tolist()}: heights and widths must be multiples of the merge "
                             f"size {m}")
        return grid

    def _features(self, pixel_values: torch.Tensor | None, image_grid_thw: torch.Tensor | None,
                  image_features: MergedVisionFeatures | None) -> MergedVisionFeatures:
        if pixel_values is None and image_features is None:
            raise ValueError("missing pixel_values: pass the processor's pixel_values and image_grid_thw, or cached "
                             "image_features")
        if pixel_values is not None and image_features is not None:
            raise ValueError("pass either pixel_values or image_features, not both")
        if image_features is None:
            if image_grid_thw is None:
                raise ValueError("missing image_grid_thw: pass it with pixel_values (the processor returns both)")
            return self.vision_features(pixel_values, image_grid_thw=image_grid_thw)  # type: ignore[arg-type]
        if not isinstance(image_features, MergedVisionFeatures):
            raise TypeError(f"image_features must be MergedVisionFeatures (from vision_features), got "
                            f"{type(image_features).__name__}")
        if image_grid_thw is not None and not torch.equal(image_grid_thw.cpu(), image_features.grid_thw.cpu()):
            raise ValueError(f"image_grid_thw {image_grid_thw.tolist()} differs from the grids of image_features "
                             f"{image_features.grid_thw.tolist()}")
        expected = (image_features.grid_thw.prod(-1) // self.merge_size**2).tolist()
        if image_features.counts != expected:
            raise ValueError(f"image_features hold {image_features.counts} tokens per image but their grids give "
                             f"{expected}")
        return image_features

    def _select(self, features: MergedVisionFeatures) -> TokenSelection:
        config = _KEEP_ALL if self.config.method == "fastv" else self.config
        # One image at a time: token counts differ, and an image's selection never depends on its batch. The
        # merged grid (rows, cols) goes along for the grid-based selectors (uniform); the others ignore it.
        m = self.merge_size
        parts = [
            select_tokens(f.unsqueeze(0), config, **({"grid_shape": torch.tensor([h // m, w // m])} if t == 1 else {}))
            for f, (t, h, w) in zip(features.features, features.grid_thw.tolist(), strict=True)
        ]
        width = max(features.counts)
        scores = torch.full((len(parts), width), float("-inf"))
        for i, p in enumerate(parts):
            scores[i, : p.scores.shape[-1]] = p.scores[0].float().cpu()
        return TokenSelection([p.indices[0] for p in parts], scores, torch.cat([p.rank.cpu() for p in parts]),
                              method=config.method)

    # -- positions and sequence ---------------------------------------------------------------------------------
    def rope_positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, image_grid_thw: torch.Tensor,
                       mm_token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own ``(3, B, L)`` M-RoPE positions and ``(B, 1)`` deltas of the *unpruned* prompts."""
        if mm_token_type_ids is None:
            mm_token_type_ids = (input_ids == self.image_token_id).long()
            mm_token_type_ids[input_ids == int(self.model.config.video_token_id)] = 2
        return self.model.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_token_type_ids.to(input_ids.device),
            image_grid_thw=image_grid_thw.to(input_ids.device), attention_mask=attention_mask,
        )

    def _image_runs(self, input_ids: torch.Tensor, mask: torch.Tensor, counts: list[int]
                    ) -> list[list[tuple[int, int]]]:
        runs: list[list[tuple[int, int]]] = []
        for row, m in zip(input_ids, mask, strict=True):
            valid = m.bool().nonzero().flatten()
            row_runs = image_placeholder_runs(row[valid], self.image_token_id)
            runs.append([(int(valid[s]), n) for s, n in row_runs])  # back to padded columns
        found = [n for r in runs for _, n in r]
        if len(found) != len(counts):
            per_prompt = [len(r) for r in runs]
            raise ValueError(f"{len(counts)} images were given but the prompts hold {len(found)} image placeholder "
                             f"runs ({per_prompt} per prompt)")
        if found != counts:
            raise ValueError(f"the prompts' image placeholder runs have {found} tokens but the images give {counts}; "
                             "were the prompts made by this model's processor with these images?")
        return runs

    @torch.no_grad()
    def prepare_inputs(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        image_features: MergedVisionFeatures | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
    ) -> PreparedQwenInputs:
        """Select, drop and re-pad: build the language model's inputs for one batch.

        Args:
            input_ids: ``(B, L)`` processor output (every image expanded to its ``T_i`` placeholders).
            attention_mask: ``(B, L)`` processor output; padding may be on either side.
            pixel_values: processor output; or instead ``image_features`` from :meth:`vision_features`.
            image_grid_thw: processor output ``(N_images, 3)`` (optional with ``image_features``).
            image_features: cached merged features of the same images.
            mm_token_type_ids: processor output (derived from ``input_ids`` when missing).
        """
        if input_ids is None:
            raise ValueError("missing input_ids: pass the processor outputs (input_ids, attention_mask, pixel_values, "
                             "image_grid_thw)")
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a (batch, length) tensor, got {got}")
        device = self.model.get_input_embeddings().weight.device
        input_ids = input_ids.to(device)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
        if mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {tuple(mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
        features = self._features(pixel_values, image_grid_thw, image_features)
        runs = self._image_runs(input_ids, mask, features.counts)
        empty = [b for b, r in enumerate(runs) if not r]
        if empty:
            raise ValueError(f"prompt(s) {empty} have no image placeholder (id {self.image_token_id}); every prompt "
                             "needs at least one image")
        positions, _ = self.rope_positions(input_ids, mask, features.grid_thw,
                                           None if mm_token_type_ids is None else mm_token_type_ids.to(device))
        selection = self._select(features)
        keep = mask.bool() & (input_ids != self.image_token_id)
        image = 0
        for b, row_runs in enumerate(runs):
            for start, _ in row_runs:
                keep[b, start + selection.indices[image].to(device)] = True
                image += 1
        lengths = keep.sum(-1)
        width = int(lengths.max())
        source = torch.full((input_ids.shape[0], width), -1, dtype=torch.long, device=device)
        for b in range(input_ids.shape[0]):
            cols = keep[b].nonzero().flatten()
            source[b, width - cols.numel():] = cols  # left padding
        new_mask = (source >= 0).long()
        gather = source.clamp(min=0)
        new_ids = input_ids.gather(1, gather).masked_fill(new_mask == 0, self.pad_token_id)
        new_pos = positions.gather(2, gather[None].expand(3, -1, -1)).masked_fill(new_mask[None] == 0, 0)
        embeds = self.model.get_input_embeddings()(new_ids)
        kept = [f[i.to(f.device)] for f, i in zip(features.features, selection.indices, strict=True)]
        image_mask = (new_ids == self.image_token_id) & new_mask.bool()
        embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), torch.cat(kept).to(embeds.device, embeds.dtype))
        text_pos = (new_mask.cumsum(-1) - 1).masked_fill(new_mask == 0, 0)
        deltas = (new_pos.amax(dim=(0, 2)) + 1 - lengths).unsqueeze(1)
        spans = self._spans(new_ids, new_mask, [len(r) for r in runs], selection.counts)
        return PreparedQwenInputs(new_ids, embeds, new_mask, new_pos, text_pos, deltas, source, selection, spans)

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

    def _record(self, prepared: PreparedQwenInputs, selection: TokenSelection, cache_lengths: list[int],
                rope_deltas: torch.Tensor | None = None) -> None:
        self.last_inputs = prepared
        self.last_selection = selection
        self.last_kept_counts = selection.counts
        self.last_cache_lengths = cache_lengths
        # What the model itself stores after a prefill: decoding positions = cached length + delta.
        self.model.model.rope_deltas = prepared.rope_deltas if rope_deltas is None else rope_deltas

    # -- generation and scoring -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        image_features: MergedVisionFeatures | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        **generate_kwargs: Any,
    ) -> Any:
        """Pruned generation; takes the processor outputs plus ``model.generate`` keyword arguments.

        Returns:
            Only the **new** tokens, ``(B, N)``, as :meth:`PrunedLlava.generate
            <adaptive_svdprune.models.llava.PrunedLlava.generate>` does (the stock ``generate`` given
            ``input_ids`` returns the prompt too: compare with ``stock[:, input_ids.shape[1]:]``). With
            ``return_dict_in_generate=True`` the ``generate`` output object is returned as is.
        """
        self._reject_video(generate_kwargs)
        prepared = self.prepare_inputs(input_ids, attention_mask, pixel_values, image_grid_thw, image_features,
                                       mm_token_type_ids)
        if self.config.method == "fastv":
            return self._fastv_generate(prepared, generate_kwargs)
        self._record(prepared, prepared.selection, prepared.attention_mask.sum(-1).tolist())
        generate_kwargs.setdefault("pad_token_id", self.pad_token_id)
        return self.model.generate(
            inputs_embeds=prepared.inputs_embeds, attention_mask=prepared.attention_mask,
            position_ids=prepared.generate_position_ids, **generate_kwargs,
        )

    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        image_features: MergedVisionFeatures | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        **forward_kwargs: Any,
    ) -> Any:
        """Pruned forward pass (scoring); logits have one row per position of ``last_inputs.input_ids``."""
        self._reject_video(forward_kwargs)
        prepared = self.prepare_inputs(input_ids, attention_mask, pixel_values, image_grid_thw, image_features,
                                       mm_token_type_ids)
        if self.config.method == "fastv":
            return self._fastv_forward(prepared, forward_kwargs)
        self._record(prepared, prepared.selection, prepared.attention_mask.sum(-1).tolist())
        return self.model(inputs_embeds=prepared.inputs_embeds, attention_mask=prepared.attention_mask,
                          position_ids=prepared.position_ids, **forward_kwargs)

    __call__ = forward

    @staticmethod
    def _reject_video(kwargs: dict[str, Any]) -> None:
        video = sorted(k for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
                       if kwargs.get(k) is not None)
        if video:
            raise NotImplementedError(f"video inputs ({video}) are not pruned yet; pass images only")
        for key in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts"):
            kwargs.pop(key, None)

    # -- FastV (inside the language model, 3-D positions kept) -----------------------------------------------------
    def _fastv(self, prepared: PreparedQwenInputs) -> Any:
        from adaptive_svdprune.models.fastv import fastv_prefill

        config = self.config
        assert isinstance(config, BaselineConfig) and config.budget is not None
        result = fastv_prefill(
            self.model.model.language_model, prepared.inputs_embeds, prepared.attention_mask,
            prepared.position_ids, prepared.image_spans, config.budget, config.fastv_layer,
        )
        width = max(int(s.numel()) for s in result.image_scores)
        scores = torch.full((len(result.image_scores), width), float("-inf"))
        for i, row in enumerate(result.image_scores):
            scores[i, : row.numel()] = row.float()
        selection = TokenSelection(result.kept_image_indices, scores, torch.zeros(len(scores), dtype=torch.long),
                                   method="fastv")
        lengths = result.attention_mask.sum(-1)
        deltas = (result.position_ids.amax(dim=(0, 2)) + 1 - lengths).unsqueeze(1)
        self._record(prepared, selection, lengths.tolist(), deltas)
        return result

    def _fastv_generate(self, prepared: PreparedQwenInputs, generate_kwargs: dict[str, Any]) -> Any:
        from adaptive_svdprune.models.fastv import fastv_decode

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

    def _fastv_forward(self, prepared: PreparedQwenInputs, forward_kwargs: dict[str, Any]) -> Any:
        from transformers.modeling_outputs import CausalLMOutputWithPast

        result = self._fastv(prepared)
        keep = forward_kwargs.get("logits_to_keep", 0)
        hidden = result.hidden_states[:, -keep:] if isinstance(keep, int) and keep else result.hidden_states
        return CausalLMOutputWithPast(logits=self.model.lm_head(hidden), cache=result.cache)


def prune_qwen_vl(model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None) -> PrunedQwenVL:
    """Wrap a Qwen2-VL / Qwen2.5-VL instance so that each image keeps ``K_i`` tokens (3-D positions kept).

    Nothing in ``model`` (or its class) is changed, except ``model.model.rope_deltas``, which the stock model
    itself overwrites on every prefill; wrappers with different configs can share one model.

    Args:
        model: a loaded model (e.g. from :func:`load_qwen_vl`).
        config: :class:`SVDPruneConfig` or :class:`BaselineConfig` (not ``cls_attention``).
        pad_token_id: id used for re-padding (default: from the model configs; its value is never attended).
    """
    return PrunedQwenVL(model, config, pad_token_id=pad_token_id)


def load_qwen_vl(
    name_or_path: str | os.PathLike[str],
    dtype: torch.dtype | Literal["auto"] | None = None,
    device: str | torch.device | None = None,
    **from_pretrained_kwargs: Any,
) -> tuple[Any, Any]:
    """Load a Qwen2-VL / Qwen2.5-VL model and its processor from a hub id or a local folder.

    With torchvision importable the stock ``AutoProcessor`` is used; otherwise (CPU torch here, see DESIGN.md
    section 4) an image-only processor built from the saved tokenizer and the PIL image processor.

    Returns:
        ``(model, processor)``; the model is in eval mode and the tokenizer pads on the left.
    """
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    classes: dict[str, Any] = {"qwen2_vl": Qwen2VLForConditionalGeneration,
                               "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration}
    model_type = AutoConfig.from_pretrained(name_or_path).model_type
    if model_type not in classes:
        raise ValueError(f"{str(name_or_path)!r} is a {model_type!r} model, not one of {sorted(classes)}")
    kwargs = dict(from_pretrained_kwargs)
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = classes[model_type].from_pretrained(name_or_path, **kwargs).eval()
    if device is not None:
        model = model.to(device)
    processor = load_qwen_vl_processor(name_or_path)
    processor.tokenizer.padding_side = "left"
    return model, processor
