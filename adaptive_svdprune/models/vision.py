"""Pre-projector vision features of a LLaVA model, and the CLS attention of the feature layer.

The features are exactly what ``LlavaModel.get_image_features`` hands to its ``multi_modal_projector``: hidden
states of ``config.vision_feature_layer`` (several layers concatenated on the channel axis when it is a list),
without the CLS token when ``config.vision_feature_select_strategy == "default"``. They are what every
selector looks at, and what the search caches so that its trials skip the vision tower.

The CLS attention (needed by the VisionZip-style ``cls_attention`` baseline) is recomputed from the feature
layer's own ``q_proj``/``k_proj`` instead of asking the tower for ``output_attentions``, which would need the
eager attention implementation and therefore a change to the shared model instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["VisionFeatures", "extract_vision_features", "feature_layers", "has_cls_token"]


@dataclass
class VisionFeatures:
    """Vision-tower output of a batch of images, before the projector.

    Attributes:
        features: ``(N_images, T, D)`` pre-projector features, in the model's dtype.
        cls_attention: ``(N_images, T)`` float32 attention of the CLS token to each of the ``T`` tokens in the
            feature layer, averaged over heads; ``None`` when it was not computed.

    Example:
        >>> import torch
        >>> vf = VisionFeatures(torch.zeros(3, 4, 2), torch.ones(3, 4))
        >>> len(vf), vf[1:].features.shape[0], VisionFeatures.cat([vf, vf]).cls_attention.shape
        (3, 2, torch.Size([6, 4]))
    """

    features: torch.Tensor
    cls_attention: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.features, torch.Tensor) or self.features.dim() != 3:
            shape = tuple(self.features.shape) if isinstance(self.features, torch.Tensor) else type(self.features)
            raise ValueError(f"features must be a (N_images, T, D) tensor, got {shape}")
        if self.cls_attention is not None and tuple(self.cls_attention.shape) != tuple(self.features.shape[:2]):
            raise ValueError(
                f"cls_attention must have shape {tuple(self.features.shape[:2])}, got {tuple(self.cls_attention.shape)}"
            )

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> VisionFeatures:
        """Features of a subset of images (an int keeps the image axis)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        attn = self.cls_attention[index] if self.cls_attention is not None else None
        return VisionFeatures(self.features[index], attn)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> VisionFeatures:
        """Move to ``device``; ``dtype`` applies to ``features`` only (the attention stays float32)."""
        attn = self.cls_attention.to(device) if self.cls_attention is not None else None
        return VisionFeatures(self.features.to(device=device, dtype=dtype), attn)

    @staticmethod
    def cat(parts: Sequence[VisionFeatures]) -> VisionFeatures:
        """Concatenate along the image axis (the attention is kept only when every part has it)."""
        if not parts:
            raise ValueError("cannot concatenate an empty list of VisionFeatures")
        attn = [p.cls_attention for p in parts if p.cls_attention is not None]
        return VisionFeatures(
            torch.cat([p.features for p in parts]), torch.cat(attn) if len(attn) == len(parts) else None
        )


def feature_layers(model: Any) -> list[int]:
    """The hidden-state indices of ``model.config.vision_feature_layer``, normalised to ``0..num_layers``.

    Index 0 is the embedding output and index ``i`` the output of encoder layer ``i - 1``.
    """
    layer = model.config.vision_feature_layer
    layers = [layer] if isinstance(layer, int) else list(layer)
    n = int(model.config.vision_config.num_hidden_layers)
    out = []
    for idx in layers:
        if not -(n + 1) <= idx <= n:
            raise ValueError(f"vision_feature_layer {idx} is out of range for a tower with {n} layers")
        out.append(idx % (n + 1))
    return out


def has_cls_token(tower: Any) -> bool:
    """Whether a vision tower prepends a CLS token (CLIP: a ``class_embedding``; SigLIP has none).

    Example:
        >>> from transformers import SiglipVisionConfig, SiglipVisionModel
        >>> has_cls_token(SiglipVisionModel(SiglipVisionConfig(hidden_size=8, intermediate_size=8,
        ...     num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14)))
        False
    """
    embeddings = getattr(tower, "embeddings", None) or getattr(getattr(tower, "vision_model", None), "embeddings",
                                                                 None)
    return hasattr(embeddings, "class_embedding")


def _cls_attention(encoder_layer: Any, layer_input: torch.Tensor) -> torch.Tensor:
    """Head-averaged attention of token 0 (CLS) to every token in one CLIP-style encoder layer, float32."""
    norm = getattr(encoder_layer, "layer_norm1", None)
    attn = getattr(encoder_layer, "self_attn", None)
    if norm is None or attn is None or not all(hasattr(attn, a) for a in ("q_proj", "k_proj", "head_dim")):
        raise NotImplementedError(
            f"CLS attention needs a CLIP-style encoder layer (layer_norm1, self_attn.q_proj/k_proj), "
            f"got {type(encoder_layer).__name__}"
        )
    h = norm(layer_input)
    n, t, _ = h.shape
    q = attn.q_proj(h[:, :1]).view(n, 1, -1, attn.head_dim).transpose(1, 2).float()
    k = attn.k_proj(h).view(n, t, -1, attn.head_dim).transpose(1, 2).float()
    scale = getattr(attn, "scale", attn.head_dim**-0.5)
    weights = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)  # (n, heads, 1, t)
    return weights.mean(dim=1)[:, 0]


@torch.no_grad()
def extract_vision_features(
    model: Any, pixel_values: torch.Tensor, with_cls_attention: bool = False
) -> VisionFeatures:
    """Run the vision tower of a ``LlavaForConditionalGeneration`` and return its pre-projector features.

    Args:
        model: the LLaVA model (its ``model.vision_tower`` and ``config`` are used, nothing is changed).
        pixel_values: ``(N_images, 3, H, W)`` as produced by the processor.
        with_cls_attention: also compute the CLS attention of the (last) feature layer.

    Returns:
        :class:`VisionFeatures` with ``T`` tokens per image (576 for LLaVA-1.5: CLS dropped).
    """
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4:
        got = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"pixel_values must be a (N_images, channels, height, width) tensor, got {got}")
    tower = model.model.vision_tower
    layers = feature_layers(model)
    wanted = sorted(set(layers) | ({layers[-1] - 1} if with_cls_attention else set()))
    if with_cls_attention and not has_cls_token(tower):
        # Ranking by "CLS" attention here would rank by the attention of patch 0: refuse instead.
        vision_type = getattr(model.config.vision_config, "model_type", None)
        raise ValueError(
            f"cls_attention needs a vision tower with a CLS token, but this {type(model).__name__}'s tower "
            f"({type(tower).__name__}, vision model_type {vision_type!r}) has none (SigLIP towers, as in "
            "LLaVA-OneVision, have none); use svd, random, uniform, l2norm or fastv"
        )
    if with_cls_attention and layers[-1] == 0:
        raise ValueError("CLS attention is undefined for vision_feature_layer 0 (the embedding output)")
    out = tower(pixel_values.to(tower.device), output_hidden_states=wanted, return_dict=True)
    hidden = out.hidden_states
    drop_cls = model.config.vision_feature_select_strategy == "default"
    pool = [hidden[i][:, 1:] if drop_cls else hidden[i] for i in layers]
    features = pool[0] if len(pool) == 1 else torch.cat(pool, dim=-1)
    cls_attention = None
    if with_cls_attention:
        last = layers[-1]
        row = _cls_attention(tower.encoder.layers[last - 1], hidden[last - 1])
        cls_attention = row[:, 1:] if drop_cls else row
    return VisionFeatures(features, cls_attention)
