"""The result of a token selection, shared by SVD-Prune and every baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["TokenSelection", "gather_kept"]


@dataclass
class TokenSelection:
    """Which vision tokens each image keeps.

    Attributes:
        indices: one ``LongTensor`` per image with the kept token positions, ascending (original order).
        scores: ``(B, T)`` float32 importance of every token (leverage for SVD-Prune); ``-inf`` where masked.
        rank: ``(B,)`` rank ``k`` of the subspace used per image (0 for selectors without one).
        method: name of the selector that produced it.

    Example:
        >>> import torch
        >>> sel = TokenSelection([torch.tensor([0, 2]), torch.tensor([1])], torch.zeros(2, 3), torch.tensor([1, 1]))
        >>> sel.counts
        [2, 1]
        >>> sel.kept_mask.tolist()
        [[True, False, True], [False, True, False]]
    """

    indices: list[torch.Tensor]
    scores: torch.Tensor
    rank: torch.Tensor
    method: str = "svd"
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def counts(self) -> list[int]:
        """Number of kept tokens per image."""
        return [int(i.numel()) for i in self.indices]

    @property
    def batch_size(self) -> int:
        return len(self.indices)

    @property
    def num_tokens(self) -> int:
        """Number of input tokens ``T`` (kept or not)."""
        return int(self.scores.shape[-1])

    @property
    def kept_mask(self) -> torch.Tensor:
        """``(B, T)`` boolean mask of kept tokens."""
        mask = torch.zeros(self.scores.shape, dtype=torch.bool, device=self.scores.device)
        for row, idx in enumerate(self.indices):
            mask[row, idx.to(mask.device)] = True
        return mask

    def to(self, device: torch.device | str) -> TokenSelection:
        """Move every tensor to ``device``."""
        return TokenSelection(
            [i.to(device) for i in self.indices],
            self.scores.to(device),
            self.rank.to(device),
            self.method,
            {k: v.to(device) for k, v in self.extras.items()},
        )


def gather_kept(features: torch.Tensor, selection: TokenSelection) -> list[torch.Tensor]:
    """Gather the kept rows of ``features`` per image, in ascending original order.

    Args:
        features: ``(B, T, ...)`` tensor whose first two dims match the selection (any dtype/device).
        selection: the selection to apply.

    Returns:
        A list of ``B`` tensors of shape ``(K_i, ...)``.

    Example:
        >>> import torch
        >>> F = torch.arange(12.0).reshape(1, 4, 3)
        >>> sel = TokenSelection([torch.tensor([1, 3])], torch.zeros(1, 4), torch.tensor([1]))
        >>> gather_kept(F, sel)[0].tolist()
        [[3.0, 4.0, 5.0], [9.0, 10.0, 11.0]]
    """
    if features.dim() < 2 or features.shape[0] != selection.batch_size:
        raise ValueError(
            f"features must be (B, T, ...) with B={selection.batch_size}, got shape {tuple(features.shape)}"
        )
    if features.shape[1] != selection.num_tokens:
        raise ValueError(f"features have {features.shape[1]} tokens but the selection was made on "
                         f"{selection.num_tokens}")
    return [features[b].index_select(0, idx.to(features.device)) for b, idx in enumerate(selection.indices)]
