"""Input checks shared by every selector: shapes, dtypes, finiteness, masks."""

from __future__ import annotations

import torch

__all__ = ["as_batch"]


def as_batch(
    F: torch.Tensor, mask: torch.Tensor | None = None, max_lead_dims: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, ...]]:
    """Validate ``F`` (``(..., T, D)``) and ``mask`` (``(..., T)``) and flatten the leading dims.

    Returns:
        ``(F3, mask2, lead)``: ``F`` as ``(N, T, D)``, the mask as ``(N, T)`` bool (or None) and the original
        leading shape (``()`` for a 2-D input).

    Raises:
        TypeError: ``F`` is not a floating-point tensor, or ``mask`` is not boolean.
        ValueError: fewer than 2 dims, no tokens or no channels, NaN/Inf values, a mask of the wrong shape, or a
            mask row without any valid token.

    Example:
        >>> import torch
        >>> as_batch(torch.ones(5, 3))[0].shape
        torch.Size([1, 5, 3])
        >>> as_batch(torch.ones(2, 0, 3))
        Traceback (most recent call last):
        ...
        ValueError: F has no tokens: shape (2, 0, 3)
    """
    if not isinstance(F, torch.Tensor):
        raise TypeError(f"F must be a torch.Tensor, got {type(F).__name__}")
    if not F.is_floating_point():
        raise TypeError(f"F must be a floating-point tensor, got dtype {F.dtype}")
    if F.dim() < 2:
        raise ValueError(f"F must have shape (..., T, D) with at least 2 dims, got shape {tuple(F.shape)}")
    lead = tuple(F.shape[:-2])
    if max_lead_dims is not None and len(lead) > max_lead_dims:
        raise ValueError(f"F must be (T, D) or (B, T, D), got shape {tuple(F.shape)}")
    if F.shape[-2] == 0:
        raise ValueError(f"F has no tokens: shape {tuple(F.shape)}")
    if F.shape[-1] == 0:
        raise ValueError(f"F has no feature channels: shape {tuple(F.shape)}")
    if F.numel() and not bool(torch.isfinite(F).all()):
        bad = (~torch.isfinite(F)).sum().item()
        raise ValueError(f"F contains {bad} NaN or Inf values (shape {tuple(F.shape)})")
    T, D = F.shape[-2], F.shape[-1]
    flat = F.reshape(-1, T, D)
    if mask is None:
        return flat, None, lead
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if tuple(mask.shape) != (*lead, T):
        raise ValueError(f"mask must have shape {(*lead, T)} to match F {tuple(F.shape)}, got {tuple(mask.shape)}")
    mask2 = mask.reshape(-1, T).to(F.device)
    empty = (~mask2.any(-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mask rows {empty} have no valid token")
    return flat, mask2, lead
