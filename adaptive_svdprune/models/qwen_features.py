"""Qwen2-VL / Qwen2.5-VL vision features: the merged tokens of every image, with their patch grids.

Image ``i`` gives ``T_i = t * (h / m) * (w / m)`` merged tokens (``image_grid_thw`` row ``(t, h, w)``, merge size
``m``), so a batch of features is a list of ``(T_i, D)`` tensors, not one ``(N, T, D)`` tensor as for LLaVA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["MergedVisionFeatures", "image_pixel_values"]


@dataclass
class MergedVisionFeatures:
    """The merged vision tokens of a batch of images, one ``(T_i, D)`` tensor per image, and their grids.

    Attributes:
        features: per image, the ``T_i`` merger outputs in the model's sequence order (row-major over the merged
            ``(h / m) x (w / m)`` grid), width = the language model's hidden size.
        grid_thw: ``(N_images, 3)`` the processor's ``image_grid_thw`` (patch grid before merging).

    Example:
        >>> mvf = MergedVisionFeatures([torch.zeros(4, 8), torch.zeros(6, 8)], torch.tensor([[1, 4, 4], [1, 4, 6]]))
        >>> len(mvf), mvf.counts, mvf[1].counts
        (2, [4, 6], [6])
    """

    features: list[torch.Tensor]
    grid_thw: torch.Tensor

    def __post_init__(self) -> None:
        self.features = list(self.features)
        if not isinstance(self.grid_thw, torch.Tensor) or self.grid_thw.dim() != 2 or self.grid_thw.shape[1] != 3:
            got = tuple(self.grid_thw.shape) if isinstance(self.grid_thw, torch.Tensor) else type(self.grid_thw)
            raise ValueError(f"grid_thw must be a (N_images, 3) tensor, got {got}")
        if len(self.features) != self.grid_thw.shape[0]:
            raise ValueError(f"{len(self.features)} feature tensors but {self.grid_thw.shape[0]} grid rows")
        bad = [i for i, f in enumerate(self.features) if not isinstance(f, torch.Tensor) or f.dim() != 2]
        if bad:
            raise ValueError(f"features must be (T_i, D) tensors; images {bad} are not")

    def __len__(self) -> int:
        return len(self.features)

    @property
    def counts(self) -> list[int]:
        """Merged token count ``T_i`` of every image."""
        return [int(f.shape[0]) for f in self.features]

    def __getitem__(self, index: int | slice | Sequence[int]) -> MergedVisionFeatures:
        """Features of a subset of images (an int keeps the image axis)."""
        if isinstance(index, int):
            rows = [range(len(self))[index]]
        elif isinstance(index, slice):
            rows = list(range(len(self)))[index]
        else:
            rows = [int(i) for i in index]
        return MergedVisionFeatures([self.features[i] for i in rows], self.grid_thw[rows])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MergedVisionFeatures:
        return MergedVisionFeatures([f.to(device=device, dtype=dtype) for f in self.features],
                                    self.grid_thw.to(device))

    @staticmethod
    def cat(parts: Sequence[MergedVisionFeatures]) -> MergedVisionFeatures:
        """Concatenate along the image axis."""
        if not parts:
            raise ValueError("cannot concatenate an empty list of MergedVisionFeatures")
        return MergedVisionFeatures([f for p in parts for f in p.features], torch.cat([p.grid_thw for p in parts]))

    def entries(self) -> list[dict[str, torch.Tensor]]:
        """One ``{"features": (T_i, D), "grid_thw": (3,)}`` dict per image (for a per-image feature cache)."""
        return [{"features": f, "grid_thw": g} for f, g in zip(self.features, self.grid_thw, strict=True)]

    @staticmethod
    def from_entries(entries: Sequence[dict[str, torch.Tensor]]) -> MergedVisionFeatures:
        """Inverse of :meth:`entries`."""
        return MergedVisionFeatures([e["features"] for e in entries], torch.stack([e["grid_thw"] for e in entries]))


def image_pixel_values(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, images: Sequence[int]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch rows and grid rows of a subset of images of a processor batch (e.g. the feature-cache misses).

    Example:
        >>> pv, grid = image_pixel_values(torch.arange(10.0)[:, None], torch.tensor([[1, 2, 2], [1, 2, 3]]), [1])
        >>> pv.flatten().tolist(), grid.tolist()
        ([4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [[1, 2, 3]])
    """
    pieces = torch.split(pixel_values, image_grid_thw.prod(-1).tolist())
    rows = [int(i) for i in images]
    return torch.cat([pieces[i] for i in rows]), image_grid_thw[rows]
