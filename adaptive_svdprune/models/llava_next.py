"""SVD-Prune for LLaVA-NeXT (LLaVA-1.6) and LLaVA-OneVision: anyres images, pruned the same plug-in way.

Both families cut an image into a base view plus high-resolution crops, run the vision tower on every view,
project the tokens, stitch the crops into one unpadded grid and close each grid row with a learned newline
(OneVision also down-samples very large grids, ``anyres_max_9``). The wrappers here wrap a stock
``LlavaNextForConditionalGeneration`` / ``LlavaOnevisionForConditionalGeneration`` *instance*: they run the vision
tower, lay the pre-projector features out in the order the language model will see them (by calling the model's
own ``pack_image_features`` on the features and on position tags, so the layout is the model's, not a copy of
it), select positions with :func:`adaptive_svdprune.models.anyres.select_anyres`, project only the kept tokens,
and hand the language model ``K_i`` positions per image, newlines included. Everything else (left re-padding,
cached features, FastV, ``last_kept_counts``) is :class:`~adaptive_svdprune.models.llava.PrunedLlava`'s.

NOTE (OneVision down-sampling): OneVision resamples the *projected* crops of very large images bilinearly, which
is not row-wise, so for those images the crops are projected in full and the resampled positions gathered
(exactly the stock values); selection still looks at the pre-projector features, resampled the same way.

Example:
    >>> from PIL import Image
    >>> from adaptive_svdprune.assets import demo_image_path
    >>> from adaptive_svdprune.models.families import load_model, prune_model
    >>> from adaptive_svdprune.models.tiny_next import tiny_next_path
    >>> from adaptive_svdprune.pruning.config import SVDPruneConfig
    >>> model, processor = load_model(tiny_next_path())
    >>> pruned = prune_model(model, SVDPruneConfig(budget=64))
    >>> inputs = processor(images=Image.open(demo_image_path()), text="USER: <image>\\nWhat is it? ASSISTANT:",
    ...                    return_tensors="pt")
    >>> new_tokens = pruned.generate(**inputs, max_new_tokens=4, min_new_tokens=4)
    >>> new_tokens.shape, pruned.last_kept_counts
    (torch.Size([1, 4]), [64])
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from adaptive_svdprune.models.anyres import SPLITS, AnyresImage, Split, select_anyres
from adaptive_svdprune.models.llava import PreparedInputs, PrunedLlava
from adaptive_svdprune.models.placeholders import _valid_rows, collapse_image_placeholders, split_runs_by_length
from adaptive_svdprune.models.vision import extract_vision_features
from adaptive_svdprune.pruning.config import BaselineConfig, SelectorConfig
from adaptive_svdprune.pruning.selection import TokenSelection

__all__ = ["AnyresFeatures", "PrunedLlavaNext", "PrunedLlavaOnevision"]


@dataclass
class AnyresFeatures:
    """Vision-tower output of a batch of anyres images, before the projector (what a feature cache stores).

    Attributes:
        views: per image, ``(V_i, T, D)`` features of its views (base view first, then the crops row-major).
        image_sizes: ``(N, 2)`` original ``(height, width)`` of each image (the processor's ``image_sizes``).
        cls_attention: per image ``(V_i, T)`` CLS attention of the feature layer, or ``None``.
    """

    views: list[torch.Tensor]
    image_sizes: torch.Tensor
    cls_attention: list[torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.views) != len(self.image_sizes):
            raise ValueError(f"{len(self.views)} images of features but {len(self.image_sizes)} image_sizes")

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int | slice | Sequence[int]) -> AnyresFeatures:
        """Features of a subset of images (an int keeps the image axis)."""
        picks = [index] if isinstance(index, int) else range(len(self))[index] if isinstance(index, slice) \
            else list(index)
        attn = [self.cls_attention[i] for i in picks] if self.cls_attention is not None else None
        return AnyresFeatures([self.views[i] for i in picks], self.image_sizes[list(picks)], attn)

    def entry(self, index: int) -> dict[str, torch.Tensor]:
        """One image as a plain dict of tensors (for an on-disk cache); :meth:`from_entries` reverses it."""
        out = {"features": self.views[index], "image_size": self.image_sizes[index]}
        if self.cls_attention is not None:
            out["cls_attention"] = self.cls_attention[index]
        return out

    @staticmethod
    def from_entries(entries: Sequence[dict[str, torch.Tensor]]) -> AnyresFeatures:
        """Rebuild from :meth:`entry` dicts (the attention is kept only when every entry has it)."""
        attn = [e["cls_attention"] for e in entries if "cls_attention" in e]
        return AnyresFeatures([e["features"] for e in entries], torch.stack([e["image_size"] for e in entries]),
                              attn if len(attn) == len(entries) else None)


@dataclass
class _Laid:
    """An image laid out for the language model, plus how to project its kept positions."""

    image: AnyresImage
    resampled_run: torch.Tensor | None  # (L, H) stock-projected run when the model resamples the grid


class PrunedLlavaNext(PrunedLlava):
    """A LLaVA-NeXT model whose images enter the language model with ``K_i`` positions each.

    Use :func:`adaptive_svdprune.models.families.prune_model`. ``generate``/``forward`` take the processor outputs
    (``input_ids``, ``attention_mask``, ``pixel_values``, ``image_sizes``) or cached ``image_features`` from
    :meth:`vision_features` instead of ``pixel_values``/``image_sizes``. ``last_selection.indices`` are the kept
    positions of each image's run (newlines included); ``last_kept_counts`` their numbers.

    Attributes:
        split: ``"global"`` (one selection over every view) or ``"per_view"``.
        last_layouts: the :class:`AnyresImage` of each image of the last call.
    """

    model_class_name: ClassVar[str] = "LlavaNextForConditionalGeneration"
    image_input_names: ClassVar[tuple[str, ...]] = ("image_sizes",)

    def __init__(self, model: nn.Module, config: SelectorConfig, pad_token_id: int | None = None,
                 split: Split = "global") -> None:
        super().__init__(model, config, pad_token_id=pad_token_id)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split: Split = split
        self.last_layouts: list[AnyresImage] = []
        self._modeling = importlib.import_module(type(model.model).__module__)

    @classmethod
    def _check_model(cls, model: nn.Module) -> None:
        if type(model).__name__ != cls.model_class_name or not hasattr(model, "model"):
            raise TypeError(f"{cls.__name__} needs a {cls.model_class_name}, got {type(model).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, config={self.config!r}, split={self.split!r})"

    @property
    def config(self) -> SelectorConfig:
        return self._config

    @config.setter
    def config(self, value: SelectorConfig) -> None:
        PrunedLlava.config.fset(self, value)  # type: ignore[attr-defined]
        tower = self.model.model.vision_tower
        if "cls_attention" in value.requires and not self._has_cls_token():
            raise ValueError(
                f"config method {value.method!r} needs a CLS token, but the vision tower of this "
                f"{type(self.model).__name__} ({type(tower).__name__}) has none; use svd, random, uniform, l2norm "
                "or fastv"
            )

    def _has_cls_token(self) -> bool:
        # CLIP towers have a class embedding (SigLIP's have none); a "full" strategy keeps no CLS apart either
        return hasattr(getattr(self.model.model.vision_tower, "embeddings", None), "class_embedding")

    # -- vision ------------------------------------------------------------------------------------------------
    def cache_entries(self, features: AnyresFeatures) -> list[dict[str, torch.Tensor]]:  # type: ignore[override]
        """One dict of tensors per image (views, image size, attention) for an on-disk cache."""
        return [features.entry(i) for i in range(len(features))]

    def features_from_cache(self, entries: list[dict[str, torch.Tensor]]) -> AnyresFeatures:  # type: ignore[override]
        """Inverse of :meth:`cache_entries`."""
        return AnyresFeatures.from_entries(entries)

    def _views_per_image(self, image_sizes: torch.Tensor, batch_num_images: Any = None) -> list[int]:
        cfg = self.model.config
        return [int(self._modeling.image_size_to_num_patches(size, cfg.image_grid_pinpoints,
                                                             cfg.vision_config.image_size)) for size in image_sizes]

    def vision_features(  # type: ignore[override]
        self, pixel_values: torch.Tensor, cls_attention: bool | None = None, image_sizes: torch.Tensor | None = None,
        batch_num_images: Any = None,
    ) -> AnyresFeatures:
        """Pre-projector features of every view, per image, to cache and pass back as ``image_features``.

        Args:
            pixel_values: processor output, ``(N, V_max, 3, H, W)`` (or the views already concatenated).
            cls_attention: also compute the CLS attention (where the tower has a CLS token; ``None`` otherwise);
                ``None``: only when the current config needs it.
            image_sizes: the processor's ``image_sizes`` (the crop grid depends on them).
            batch_num_images: OneVision's images per prompt (several images per prompt are not cropped).
        """
        if image_sizes is None:
            raise ValueError(f"{self.model_class_name} needs image_sizes (a processor output) with pixel_values")
        image_sizes = torch.as_tensor(image_sizes).reshape(-1, 2).cpu()
        counts = self._views_per_image(image_sizes, batch_num_images)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() not in (4, 5):
            got = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"pixel_values must be (images, views, 3, H, W) or (views, 3, H, W), got {got}")
        if pixel_values.dim() == 5:
            if pixel_values.shape[0] != len(counts):
                raise ValueError(f"{pixel_values.shape[0]} images of pixel_values but {len(counts)} image_sizes")
            pixel_values = torch.cat([p[:n] for p, n in zip(pixel_values, counts, strict=True)])
        elif pixel_values.shape[0] != sum(counts):
            raise ValueError(f"{pixel_values.shape[0]} views of pixel_values but image_sizes imply {sum(counts)}")
        want = (self._needs_cls_attention() if cls_attention is None else cls_attention) and self._has_cls_token()
        out = extract_vision_features(self.model, pixel_values, with_cls_attention=want)
        views = list(out.features.split(counts))
        attn = list(out.cls_attention.split(counts)) if out.cls_attention is not None else None
        return AnyresFeatures(views, image_sizes, attn)

    def _anyres_features(self, pixel_values: torch.Tensor | None, image_features: Any, image_sizes: Any,
                         batch_num_images: Any) -> AnyresFeatures:
        if pixel_values is None and image_features is None:
            raise ValueError("missing pixel_values: pass the processor's pixel_values and image_sizes, or cached "
                             "image_features")
        if pixel_values is not None and image_features is not None:
            raise ValueError("pass either pixel_values or image_features, not both")
        if image_features is None:
            return self.vision_features(pixel_values, image_sizes=image_sizes,  # type: ignore[arg-type]
                                        batch_num_images=batch_num_images)
        if not isinstance(image_features, AnyresFeatures):
            raise TypeError(f"image_features must be AnyresFeatures (from vision_features), got "
                            f"{type(image_features).__name__}")
        if self._needs_cls_attention() and image_features.cls_attention is None:
            raise ValueError(f"config method {self.config.method!r} needs the CLS attention: cache the features "
                             "with vision_features(..., cls_attention=True)")
        return image_features

    # -- layout ------------------------------------------------------------------------------------------------
    def _pack(self, views: torch.Tensor, image_size: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config
        packed, _ = self.model.model.pack_image_features(
            [views], image_size[None], vision_feature_select_strategy=cfg.vision_feature_select_strategy,
            image_newline=newline,
        )
        return packed[0]

    def _lay_out(self, views: torch.Tensor, image_size: torch.Tensor, attn: torch.Tensor | None) -> _Laid:
        cfg = self.model.config
        n_views, tokens = int(views.shape[0]), int(views.shape[1])
        side = cfg.vision_config.image_size // cfg.vision_config.patch_size
        # Position tags through the model's own packing: (is_newline, source index, grid row, grid column).
        tags = torch.zeros(n_views, tokens, 4, dtype=torch.float64)
        tags[..., 1] = torch.arange(n_views * tokens, dtype=torch.float64).view(n_views, tokens)
        tags[0, :, 2:] = -1.0
        cols = 1
        if n_views > 1:
            _, cols = self._modeling.get_anyres_image_grid_shape(image_size, cfg.image_grid_pinpoints,
                                                                 cfg.vision_config.image_size)
            crop = torch.arange(n_views - 1)
            local = torch.arange(tokens)
            tags[1:, :, 2] = ((crop // cols) * side)[:, None] + (local // side)[None].double()
            tags[1:, :, 3] = ((crop % cols) * side)[:, None] + (local % side)[None].double()
        packed_tags = self._pack(tags, image_size, torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64))
        is_newline = packed_tags[:, 0] > 0.5
        token_tags = packed_tags[~is_newline]
        packed = self._pack(views, image_size, views.new_zeros(views.shape[-1]))[(~is_newline).to(views.device)]
        packed_attn = None
        if attn is not None:
            packed_attn = self._pack(attn[..., None].float(), image_size, attn.new_zeros(1).float())[
                (~is_newline).to(attn.device), 0]
        view_ids = torch.zeros(token_tags.shape[0], dtype=torch.long)
        if n_views > 1:
            y = token_tags[:, 2].clamp(min=0).floor().long() // side
            x = token_tags[:, 3].clamp(min=0).floor().long() // side
            view_ids = torch.where(token_tags[:, 2] < 0, 0, 1 + y * cols + x)
        layout = torch.full((packed_tags.shape[0],), -1, dtype=torch.long)
        layout[~is_newline] = torch.arange(token_tags.shape[0])
        image = AnyresImage.from_layout(packed, layout.tolist(), view_ids, packed_attn)
        source = token_tags[:, 1]
        resampled = None
        if not bool((source == source.round()).all()):
            projector = self.model.model.multi_modal_projector
            projected = projector(views.to(self.model.model.image_newline.device))
            resampled = self._pack(projected, image_size, self.model.model.image_newline)
        return _Laid(image, resampled)

    # -- the language model's inputs ---------------------------------------------------------------------------
    @torch.no_grad()
    def prepare_inputs(  # type: ignore[override]
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: AnyresFeatures | None = None,
        image_sizes: torch.Tensor | None = None,
        batch_num_images: Any = None,
    ) -> PreparedInputs:
        """Lay out, select, project and collapse: the language model's inputs for one batch.

        Args:
            input_ids: ``(B, L)`` processor output (each image expanded to its placeholders, newlines included).
            attention_mask: ``(B, L)`` processor output; padding may be on either side.
            pixel_values: processor output; or instead ``image_features`` from :meth:`vision_features`.
            image_features: cached :class:`AnyresFeatures` of the same images.
            image_sizes: processor output (needed with ``pixel_values``).
            batch_num_images: OneVision processor output (images per prompt).
        """
        if input_ids is None:
            raise ValueError("missing input_ids: pass the processor outputs (input_ids, attention_mask, pixel_values,"
                             " image_sizes)")
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a (batch, length) tensor, got {got}")
        features = self._anyres_features(pixel_values, image_features, image_sizes, batch_num_images)
        attn = features.cls_attention if self._needs_cls_attention() else None
        laid = [self._lay_out(v, s, None if attn is None else attn[i])
                for i, (v, s) in enumerate(zip(features.views, features.image_sizes, strict=True))]
        lengths = [item.image.length for item in laid]
        runs = split_runs_by_length(_valid_rows(input_ids, attention_mask), self.image_token_id, lengths)
        per_prompt = [len(r) for r in runs]
        empty = [i for i, n in enumerate(per_prompt) if n == 0]
        if empty:
            raise ValueError(f"prompt(s) {empty} have no image placeholder (<image>, id {self.image_token_id}); "
                             "every prompt needs at least one image")
        config: SelectorConfig = BaselineConfig("none") if self.config.method == "fastv" else self.config
        kept = [select_anyres(item.image, config, self.split) for item in laid]
        counts = [int(k.numel()) for k in kept]
        device = self.model.get_input_embeddings().weight.device
        new_ids, new_mask = collapse_image_placeholders(
            input_ids.to(device), None if attention_mask is None else attention_mask.to(device), counts,
            self.image_token_id, self.pad_token_id, padding_side="left", tokens_per_image=lengths,
        )
        embeds = self.model.get_input_embeddings()(new_ids)
        image_embeds = self._kept_embeddings(laid, kept, device)
        image_mask = (new_ids == self.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(image_mask, image_embeds.to(embeds.dtype))
        positions = (new_mask.cumsum(-1) - 1).masked_fill(new_mask == 0, 0)
        scores = torch.full((len(kept), max(lengths)), float("-inf"))
        for i, n in enumerate(lengths):
            scores[i, :n] = 0.0
        selection = TokenSelection(kept, scores, torch.zeros(len(kept), dtype=torch.long), method=self.config.method)
        self.last_layouts = [item.image for item in laid]
        spans = self._spans(new_ids, new_mask, per_prompt, counts)
        return PreparedInputs(new_ids, embeds, new_mask, positions, selection, spans)

    def _kept_embeddings(self, laid: list[_Laid], kept: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """The kept positions' embeddings of every image, in reading order (one projector call for all tokens)."""
        rows: list[torch.Tensor] = []
        plans = []
        for item, positions in zip(laid, kept, strict=True):
            image = item.image
            is_token = torch.zeros(image.length, dtype=torch.bool)
            is_token[image.token_positions] = True
            token_index = torch.full((image.length,), -1, dtype=torch.long)
            token_index[image.token_positions] = torch.arange(image.num_tokens)
            picks = token_index[positions]
            if item.resampled_run is None:
                rows.append(image.features[picks[picks >= 0].to(image.features.device)])
            plans.append((item, positions, picks))
        projector = self.model.model.multi_modal_projector
        projected = projector(torch.cat(rows).to(device)) if rows else None
        newline = self.model.model.image_newline
        out, cursor = [], 0
        for item, positions, picks in plans:
            if item.resampled_run is not None:
                out.append(item.resampled_run[positions.to(item.resampled_run.device)].to(device))
                continue
            assert projected is not None
            n = int((picks >= 0).sum())
            run = newline.to(device, projected.dtype).expand(positions.numel(), -1).clone()
            run[(picks >= 0).to(device)] = projected[cursor : cursor + n]
            cursor += n
            out.append(run)
        return torch.cat(out)


class PrunedLlavaOnevision(PrunedLlavaNext):
    """A LLaVA-OneVision model whose images enter the language model with ``K_i`` positions each.

    As :class:`PrunedLlavaNext`, plus OneVision's ``batch_num_images`` (several images in one prompt are each
    one view and a newline) and its down-sampling of very large grids. Video inputs are not pruned.
    """

    model_class_name: ClassVar[str] = "LlavaOnevisionForConditionalGeneration"
    image_input_names: ClassVar[tuple[str, ...]] = ("image_sizes", "batch_num_images")

    def _views_per_image(self, image_sizes: torch.Tensor, batch_num_images: Any = None) -> list[int]:
        cropped = [True] * len(image_sizes) if batch_num_images is None else \
            [int(n) == 1 for n in batch_num_images for _ in range(int(n))]
        if len(cropped) != len(image_sizes):
            raise ValueError(f"batch_num_images {list(batch_num_images)} does not add up to the "
                             f"{len(image_sizes)} image_sizes")
        full = super()._views_per_image(image_sizes)
        return [n if crop else 1 for n, crop in zip(full, cropped, strict=True)]

    def _pack(self, views: torch.Tensor, image_size: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
        packed, _ = self.model.model.pack_image_features(
            [views], image_size[None], image_newline=newline,
            vision_aspect_ratio=self.model.config.vision_aspect_ratio,
        )
        return packed[0]

    def _pop_image_inputs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("pixel_values_videos") is not None:
            raise NotImplementedError("video inputs are not pruned; pass images only")
        return super()._pop_image_inputs(kwargs)
