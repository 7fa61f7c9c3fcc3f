"""Where the unpruned language model's attention goes (the paper's Figures 1 and 2, made measurable).

A LLaVA-1.5 prompt reads ``[instruction][image tokens][question and prompt end]``. Three token groups:

* ``instruction``: everything before the image (system text, ``USER:``);
* ``vision``: the image's ``T`` tokens;
* ``response``: everything after the image (the question, ``ASSISTANT:``), the last token included.

**Figure 1** (:func:`group_shares`): per decoder layer, the attention of the last prompt token (the one that
predicts the answer, and the one FastV ranks with), averaged over heads, summed per group. The three shares sum
to 1 in every layer.

**Figure 2** (:func:`image_token_scores`): the score an attention-based method would give each image token in
one layer, under two averaging schemes:

* ``all_queries``: attention received, averaged over every query position of the prompt. Under the causal mask
  an early token is seen by more queries than a late one, so this scheme leans to the top rows of the image;
* ``last_token``: attention received from the last prompt token only (FastV). Rotary position decay favours
  the tokens nearest that query, so this scheme leans to the bottom rows.

The attention weights come from the model itself (``output_attentions=True``), which needs the eager attention
implementation: load the model with ``attn_implementation="eager"``.

Example:
    >>> import torch
    >>> attn = torch.softmax(torch.randn(2, 6, 6), -1).tril()     # (heads, L, L): 1 token, 3 image, 2 after
    >>> attn = attn / attn.sum(-1, keepdim=True)
    >>> shares = group_shares(attn.mean(0)[-1], span=(1, 3))
    >>> round(float(shares.sum()), 6), image_token_scores(attn, span=(1, 3))["last_token"].shape
    (1.0, torch.Size([3]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["ATTENTION_GROUPS", "SCORE_SCHEMES", "AttentionStats", "decoder_attention_rows", "decoder_attentions",
           "group_shares", "image_token_scores"]

ATTENTION_GROUPS: tuple[str, ...] = ("instruction", "vision", "response")
SCORE_SCHEMES: tuple[str, ...] = ("all_queries", "last_token")


def group_shares(last_row: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    """``(3,)`` attention mass of one query row on the instruction, vision and response groups.

    Args:
        last_row: ``(L,)`` head-averaged attention weights of the query (padding columns hold 0).
        span: ``(start, length)`` of the image tokens.
    """
    start, length = span
    row = last_row.float()
    return torch.stack([row[:start].sum(), row[start : start + length].sum(), row[start + length :].sum()])


def image_token_scores(attn: torch.Tensor, span: tuple[int, int],
                       valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The ``(T,)`` score of each image token under both schemes (see the module docstring).

    Args:
        attn: ``(heads, L, L)`` or ``(L, L)`` attention weights of one prompt in one layer (rows: queries).
        span: ``(start, length)`` of the image tokens.
        valid: ``(L,)`` mask of real (non-padding) query positions; ``None``: all.
    """
    weights = attn.float().mean(0) if attn.dim() == 3 else attn.float()
    start, length = span
    cols = weights[:, start : start + length]
    rows = valid.bool() if valid is not None else torch.ones(weights.shape[0], dtype=torch.bool)
    return {"all_queries": cols[rows].mean(0), "last_token": cols[-1]}


@torch.no_grad()
def decoder_attentions(model: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                       position_ids: torch.Tensor) -> list[torch.Tensor]:
    """Every decoder layer's ``(B, heads, L, L)`` attention weights (float32) for one unpruned prompt batch.

    Raises:
        ValueError: the model does not return attention weights (it was not loaded with eager attention).
    """
    out = model.model.language_model(
        inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
        output_attentions=True, use_cache=False,
    )
    if not out.attentions or any(a is None for a in out.attentions):
        impl = getattr(model.config.text_config, "_attn_implementation", None)
        raise ValueError(f"the language model returned no attention weights (attention implementation {impl!r}); "
                         "load it with attn_implementation='eager'")
    return [a.float() for a in out.attentions]


@torch.no_grad()
def decoder_attention_rows(model: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                           position_ids: torch.Tensor, full_layer: int) -> list[torch.Tensor]:
    """What :class:`AttentionStats` needs of each decoder layer, one layer in memory at a time.

    Layer ``full_layer`` gives its ``(B, heads, L, L)`` weights (the image-token scores); every other layer only
    the last query row, ``(B, heads, 1, L)`` (the group shares). :func:`decoder_attentions` holds every layer's
    full matrix at once, which for an anyres or native-resolution prompt of some 3,000 positions on a 7B model
    is tens of GB; here forward hooks on each layer's attention module keep only the rows as the layers run.

    Raises:
        ValueError: the layers return no attention weights (the model was not loaded with eager attention).
    """
    layers = getattr(model.model.language_model, "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        weights = decoder_attentions(model, inputs_embeds, attention_mask, position_ids)
        return [w if i == full_layer else w[:, :, -1:] for i, w in enumerate(weights)]
    kept: dict[int, torch.Tensor | None] = {}

    def hook(index: int) -> Any:
        def keep(_module: Any, _args: Any, output: Any) -> None:
            w = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            kept[index] = None if w is None else (w if index == full_layer else w[:, :, -1:]).float()
        return keep

    handles = [layer.self_attn.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        model.model.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   position_ids=position_ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    rows = [kept.get(i) for i in range(len(layers))]
    if any(r is None for r in rows):
        impl = getattr(model.config.text_config, "_attn_implementation", None)
        raise ValueError(f"the language model returned no attention weights (attention implementation {impl!r}); "
                         "load it with attn_implementation='eager'")
    return [r for r in rows if r is not None]


class AttentionStats:
    """Mean group shares per layer and mean image-token scores of one layer, over prompts.

    Scores are summed per place: without ``places`` (one fixed grid, LLaVA-1.5) image token ``t`` is cell ``t``
    of a grid ``grid_cols`` wide; with ``places`` each image position is binned by its relative ``(row, col)`` in
    ``[0, 1)`` onto a ``grid_rows x grid_cols`` grid (a cell then holds the attention mass of every token in it:
    anyres crops, Qwen2(.5)-VL's per-image grids), and newlines (NaN places) are left out. The score-weighted
    mean row and column are in grid units (``relative * rows - 0.5``) either way.

    Args:
        grid_cols: columns of the grid.
        score_layer: the layer whose image-token scores are averaged (FastV ranks at ``fastv_layer - 1``).
        grid_rows: rows of the grid (needed with ``places``).
    """

    def __init__(self, grid_cols: int, score_layer: int, grid_rows: int | None = None) -> None:
        self.grid_cols = grid_cols
        self.grid_rows = grid_rows
        self.score_layer = score_layer
        self.samples = 0
        self._shares: np.ndarray | None = None
        self._tokens = np.zeros(len(ATTENTION_GROUPS))
        self._scores: dict[str, np.ndarray] = {}
        self._weights: dict[str, np.ndarray] = {}  # scheme -> (score sum, score x row, score x col)

    def _place(self, length: int, places: tuple[np.ndarray, np.ndarray] | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Cell index, row and column (grid units) of every image position with a place, and the cell count."""
        if places is None:
            idx = np.arange(length)
            return idx, (idx // self.grid_cols).astype(float), (idx % self.grid_cols).astype(float), length
        if self.grid_rows is None:
            raise ValueError("AttentionStats needs grid_rows to bin relative places")
        rows, cols = (np.asarray(p, dtype=np.float64) for p in places)
        if rows.shape != (length,) or cols.shape != (length,):
            raise ValueError(f"places must give a (row, col) for each of the {length} image positions")
        placed = ~np.isnan(rows)
        r = np.floor(np.where(placed, rows, 0.0) * self.grid_rows).astype(np.int64)
        c = np.floor(np.where(placed, cols, 0.0) * self.grid_cols).astype(np.int64)
        cells = np.where(placed, r * self.grid_cols + c, -1)
        return cells, rows * self.grid_rows - 0.5, cols * self.grid_cols - 0.5, self.grid_rows * self.grid_cols

    def update(self, attentions: Sequence[torch.Tensor], span: tuple[int, int], valid: torch.Tensor,
               places: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Add one prompt: its per-layer ``(heads, L, L)`` weights, image span and ``(L,)`` padding mask.

        ``places``: relative ``(rows, cols)`` of each image position in ``[0, 1)``, NaN for a newline (see the
        class docstring); ``None``: the image positions are the cells of the grid, in order.
        """
        if not 0 <= self.score_layer < len(attentions):
            raise ValueError(f"score layer {self.score_layer} is out of range for {len(attentions)} decoder layers")
        shares = np.stack([group_shares(a.mean(0)[-1], span).cpu().numpy() for a in attentions])
        self._shares = shares if self._shares is None else self._shares + shares
        start, length = span
        n_valid = int(valid.sum())
        n_before = int(valid[:start].sum())
        self._tokens += (n_before, length, n_valid - n_before - length)
        cells, rows, cols, n_cells = self._place(length, places)
        keep = cells >= 0
        for name, s in image_token_scores(attentions[self.score_layer], span, valid).items():
            vec = s.cpu().double().numpy()
            binned = np.zeros(n_cells)
            np.add.at(binned, cells[keep], vec[keep])
            self._scores[name] = binned if name not in self._scores else self._scores[name] + binned
            w = vec[keep]
            moments = np.array([w.sum(), w @ rows[keep], w @ cols[keep]])
            self._weights[name] = moments if name not in self._weights else self._weights[name] + moments
        self.samples += 1

    def _centroid(self, name: str) -> dict[str, float | None]:
        total, row, col = self._weights[name]
        if total <= 0:
            return {"mean_row": None, "mean_col": None}
        return {"mean_row": float(row / total), "mean_col": float(col / total)}

    def summary(self) -> dict[str, Any]:
        """JSON-ready: ``shares`` (group -> per-layer mean), token counts and ``position_scores``."""
        if not self.samples or self._shares is None:
            return {"samples": 0, "groups": list(ATTENTION_GROUPS), "layers": 0, "shares": {}, "group_tokens_mean": {},
                    "position_scores": None}
        shares = self._shares / self.samples
        scores = {name: s / self.samples for name, s in self._scores.items()}
        return {
            "samples": self.samples,
            "groups": list(ATTENTION_GROUPS),
            "layers": int(shares.shape[0]),
            "shares": {g: shares[:, i].tolist() for i, g in enumerate(ATTENTION_GROUPS)},
            "group_tokens_mean": {g: float(v) / self.samples for g, v in zip(ATTENTION_GROUPS, self._tokens,
                                                                              strict=True)},
            "position_scores": {
                "layer": self.score_layer,
                "schemes": list(SCORE_SCHEMES),
                **{name: {"scores": scores[name].tolist(), **self._centroid(name)} for name in SCORE_SCHEMES},
            },
        }
