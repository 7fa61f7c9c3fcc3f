"""Run the positional-bias analysis of several pruning methods over a VQA data set (``adaptive-svdprune analyze``).

For every image the vision tower runs once; its features feed every pre-projector method (their selection never
looks at the text, so it is computed once per image and counted for each of the image's questions). Per question,
the unpruned language model runs once with attention weights (for :class:`AttentionStats`) and FastV, which
ranks image tokens by the attention of the last prompt token, runs through the stock wrapper on the same cached
features, so its kept positions are exactly the ones :func:`~adaptive_svdprune.models.fastv.fastv_prefill`
keeps when it generates. All counts are per question: a heat map sums to the tokens kept over all questions.

Every family of :func:`~adaptive_svdprune.models.families.prune_model` is analysed through its own wrapper (the
kept positions are exactly the ones it would generate with); :mod:`~adaptive_svdprune.analysis.geometry` places
them in the image. LLaVA-1.5 is counted on its patch grid (object recall applies); LLaVA-NeXT/OneVision (base view
and crops) and Qwen2(.5)-VL (a merged grid per image) are binned by relative position onto :func:`heatmap_grid`.

Example (the CLI does the same: ``adaptive-svdprune analyze --model tiny --task gqa --data DIR``)::

    model, processor = load_llava(tiny_llava_path(), attn_implementation="eager")
    data = load_task("gqa", "tests/fixtures/gqa", limit=2)
    result = analyze(model, processor, data, AnalysisSettings(("svd", "uniform", "fastv"), budget=32))
    result["methods"]["fastv"]["mean_row"], result["attention"]["shares"]["vision"]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptive_svdprune.analysis.attention import AttentionStats, decoder_attention_rows
from adaptive_svdprune.analysis.geometry import ImageLayout, image_layout
from adaptive_svdprune.analysis.positions import KeepCounter, ObjectPatches, PatchGrid
from adaptive_svdprune.data.dataset import VQADataset
from adaptive_svdprune.data.prompts import build_prompt
from adaptive_svdprune.models.anyres import SPLITS, Split
from adaptive_svdprune.models.families import prune_model
from adaptive_svdprune.models.llava_next import PrunedLlavaNext
from adaptive_svdprune.pruning.config import (
    BaselineConfig,
    SelectorConfig,
    SVDPruneConfig,
    available_selectors,
)

__all__ = ["RELATIVE_GRID", "AnalysisSettings", "analysis_methods", "analyze", "check_budget", "check_methods",
           "default_fastv_layer", "heatmap_grid", "method_config"]

#: FastV's layer in the paper (K = 2), clipped to the model's depth.
PAPER_FASTV_LAYER = 2
#: Cells per side of the heat maps of families without one patch grid per image (Qwen2(.5)-VL).
RELATIVE_GRID = 24


#: SVD-Prune on mean-centred features (``SVDPruneConfig(center=True)``), compared as a method of its own.
SVD_CENTER = "svd_center"


def analysis_methods() -> list[str]:
    """Method names ``analyze`` accepts: every registered selector but ``none`` (which keeps all tokens), and
    ``svd_center`` (SVD-Prune on mean-centred features) after ``svd``.

    Example:
        >>> [m for m in analysis_methods() if m.startswith("svd")]
        ['svd', 'svd_center']
    """
    names = [m for m in available_selectors() if m != "none"]
    at = names.index("svd") + 1 if "svd" in names else len(names)
    return [*names[:at], SVD_CENTER, *names[at:]]


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Validate method names (order kept, duplicates dropped).

    Example:
        >>> check_methods(["svd", "svd", "fastv"])
        ('svd', 'fastv')
        >>> check_methods(["svd", "magic"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown method 'magic'; known: ['cls_attention', 'fastv', 'l2norm', 'random', 'svd', ...]
    """
    known = analysis_methods()
    if isinstance(methods, str) or not methods:
        raise ValueError(f"methods must be a non-empty list of names, got {methods!r}; known: {known}")
    for m in methods:
        if m not in known:
            raise ValueError(f"unknown method {m!r}; known: {known}")
    return tuple(dict.fromkeys(methods))


def check_budget(budget: object, tokens: int | None, what: str = "the image tokens of this model") -> int:
    """``budget`` must be an int in ``[1, tokens]`` (the image's token count, ``what`` names it; ``None``: >= 1).

    Example:
        >>> check_budget(600, 576)
        Traceback (most recent call last):
        ...
        ValueError: budget must be in [1, 576] (the image tokens of this model), got 600
    """
    if tokens is None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"budget must be an int >= 1, got {budget!r}")
        return budget
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= tokens:
        raise ValueError(f"budget must be in [1, {tokens}] ({what}), got {budget!r}")
    return budget


def default_fastv_layer(num_layers: int) -> int:
    """The paper's ``K = 2``, or the last possible layer of a shallower decoder (``num_layers - 1``, at least 1)."""
    return max(1, min(PAPER_FASTV_LAYER, num_layers - 1))


def method_config(method: str, budget: int, *, variance_threshold: float = 0.9, fastv_layer: int = 2,
                  seed: int = 0) -> SelectorConfig:
    """The selector config of one method at a fixed budget."""
    if method in ("svd", SVD_CENTER):
        return SVDPruneConfig(variance_threshold=variance_threshold, budget=budget, center=method == SVD_CENTER)
    return BaselineConfig(method, budget=budget, seed=seed, fastv_layer=fastv_layer)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AnalysisSettings:
    """What :func:`analyze` measures.

    Args:
        methods: method names (see :func:`analysis_methods`).
        budget: language-model positions kept per image by every method (anyres newlines included, as
            everywhere in this package).
        variance_threshold: SVD-Prune's epsilon (the rank of its leverage scores).
        fastv_layer: FastV's pruning layer; ``None``: :func:`default_fastv_layer`. The attention scores of
            Figure 2 are read in layer ``fastv_layer - 1``, the one FastV ranks with.
        seed: seed of the ``random`` baseline.
        attention: also measure the unpruned model's attention (Figures 1 and 2; needs eager attention).
        anyres_split: LLaVA-NeXT/OneVision: ``"global"`` (one selection over base view and crops) or
            ``"per_view"``; other families have one view per image, where both agree.
    """

    methods: tuple[str, ...]
    budget: int
    variance_threshold: float = 0.9
    fastv_layer: int | None = None
    seed: int = 0
    attention: bool = True
    anyres_split: Split = "global"

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", check_methods(self.methods))
        if self.anyres_split not in SPLITS:
            raise ValueError(f"anyres_split must be one of {SPLITS}, got {self.anyres_split!r}")


def _by_image(dataset: VQADataset) -> Iterator[tuple[Path, list[int]]]:
    groups: dict[Path, list[int]] = {}
    for i, sample in enumerate(dataset.samples):
        groups.setdefault(Path(sample.image_path), []).append(i)
    yield from groups.items()


def _object_union(objects: ObjectPatches | None, image_path: Path) -> frozenset[int] | None:
    if objects is None or image_path.stem not in objects:
        return None
    return frozenset().union(*objects[image_path.stem])


def heatmap_grid(model: Any) -> tuple[PatchGrid, bool]:
    """The grid heat maps are drawn on, and whether it is the model's own patch grid (LLaVA-1.5).

    LLaVA-1.5: its patch grid (tokens map one to one, object files apply). LLaVA-NeXT/OneVision: the base
    view's patch grid (base tokens map one to one; crop tokens are binned by their place in the image).
    Qwen2(.5)-VL (a grid per image): :data:`RELATIVE_GRID` x :data:`RELATIVE_GRID` cells.
    """
    name = type(model).__name__
    if name == "LlavaForConditionalGeneration":
        return PatchGrid.from_model_config(model.config), True
    vision = model.config.vision_config
    if isinstance(getattr(vision, "image_size", None), int) and "Qwen" not in name:
        side = int(vision.image_size) // int(vision.patch_size)
        return PatchGrid(side, side), False
    return PatchGrid(RELATIVE_GRID, RELATIVE_GRID), False


def _vision_features(wrapper: Any, inputs: Any, dtype: torch.dtype, cls_attention: bool) -> Any:
    """The wrapper's cached-feature call with the processor outputs its family needs (sizes, grids)."""
    accepted = inspect.signature(wrapper.vision_features).parameters
    extra = {k: inputs[k] for k in ("image_sizes", "batch_num_images", "image_grid_thw")
             if k in accepted and k in inputs}
    return wrapper.vision_features(inputs["pixel_values"].to(dtype), cls_attention=cls_attention, **extra)


def _wrappers(model: Any, configs: dict[str, SelectorConfig], split: Split) -> tuple[dict[str, Any], dict[str, str]]:
    """One wrapper per method; a method the family refuses (no CLS token) is skipped with the wrapper's reason."""
    wrappers, skipped = {}, {}
    for m, config in configs.items():
        try:
            wrappers[m] = prune_model(model, config, split=split)
        except ValueError as err:
            skipped[m] = str(err)
    return wrappers, skipped


class _MethodCounter:
    """The keep statistics of one method: over the whole image and, for anyres, per view."""

    def __init__(self, grid: PatchGrid, patch_grid: bool, view_names: tuple[str, ...] | None) -> None:
        self.patch_grid = patch_grid
        self.all = KeepCounter(grid)
        self.views = {v: KeepCounter(grid) for v in view_names or ()}

    def update(self, layout: ImageLayout, kept: list[int], patches: frozenset[int] | None) -> None:
        positions = np.asarray(kept, dtype=np.int64)
        placed = positions[layout.view[positions] >= 0]
        if self.patch_grid:
            self.all.update(layout.patch[placed].tolist(), patches, positions=int(positions.size))
        else:
            every = layout.tokens
            self.all.update_relative(layout.row[placed], layout.col[placed], layout.row[every], layout.col[every],
                                     positions=int(positions.size))
        for v, counter in enumerate(self.views.values()):
            mine, every = placed[layout.view[placed] == v], np.flatnonzero(layout.view == v)
            counter.update_relative(layout.row[mine], layout.col[mine], layout.row[every], layout.col[every])

    def summary(self) -> dict[str, Any]:
        out = self.all.summary()
        if self.views:
            out["views"] = {name: c.summary() for name, c in self.views.items()}
        return out


@torch.no_grad()
def analyze(model: Any, processor: Any, dataset: VQADataset, settings: AnalysisSettings,
            objects: ObjectPatches | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Positional bias and object recall of each method, and the unpruned model's attention, over ``dataset``.

    Every family of :func:`~adaptive_svdprune.models.families.prune_model` is supported; kept positions are
    placed in the image by :mod:`~adaptive_svdprune.analysis.geometry` and counted on the grid of
    :func:`heatmap_grid`. A method the family cannot run (``cls_attention`` without a CLS token) is listed in
    ``skipped`` with the reason; if every method is skipped, that is a ``ValueError``.

    Args:
        model: a model of a supported family (loaded with ``attn_implementation="eager"`` when
            ``settings.attention``); it is not modified.
        processor: its processor.
        dataset: the questions (one image each).
        settings: see :class:`AnalysisSettings`.
        objects: image id -> object patches (:func:`~adaptive_svdprune.analysis.positions.load_objects`);
            ``None``: object recall is not computed. LLaVA-1.5 only (one fixed patch grid); ignored with a
            note for the other families.
        progress: called with ``(questions done, total)`` after each question.

    Returns:
        A JSON-ready dict (see ``adaptive_svdprune/commands/analyze.py`` for the schema).
    """
    grid, patch_grid = heatmap_grid(model)
    # per image below where images differ in size (anyres, Qwen): each must have at least `budget` positions
    budget = check_budget(settings.budget, grid.tokens if patch_grid else None)
    n_layers = int(model.config.text_config.num_hidden_layers)
    fastv_layer = default_fastv_layer(n_layers) if settings.fastv_layer is None else settings.fastv_layer
    configs = {m: method_config(m, budget, variance_threshold=settings.variance_threshold, fastv_layer=fastv_layer,
                                seed=settings.seed) for m in settings.methods}
    wrappers, skipped = _wrappers(model, configs, settings.anyres_split)
    if not wrappers:
        reasons = "; ".join(f"{m}: {why}" for m, why in skipped.items())
        raise ValueError(f"no requested method applies to {type(model).__name__} ({reasons})")
    keep_all = prune_model(model, BaselineConfig("none"))
    is_anyres = isinstance(keep_all, PrunedLlavaNext)
    view_names = ("base", "crops") if is_anyres else None
    counters = {m: _MethodCounter(grid, patch_grid, view_names) for m in wrappers}
    needs_cls = any("cls_attention" in configs[m].requires for m in wrappers)
    notes = []
    if not patch_grid:
        objects = None
    stats = AttentionStats(grid.cols, score_layer=fastv_layer - 1, grid_rows=grid.rows) if settings.attention \
        else None
    dtype = next(model.parameters()).dtype
    done, images, images_with_objects = 0, 0, 0
    lengths: list[int] = []
    for image_path, indices in _by_image(dataset):
        features: Any = None
        layout: ImageLayout | None = None
        kept: dict[str, list[int]] = {}
        patches = _object_union(objects, image_path)
        images += 1
        images_with_objects += patches is not None
        for i in indices:
            example = dataset[i]
            inputs = processor(images=example.image, text=build_prompt(processor, example.question_text),
                               return_tensors="pt")
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            prepared = None
            if features is None:  # once per image, shared by every method and question
                features = _vision_features(keep_all, inputs, dtype, needs_cls)
                prepared = keep_all.prepare_inputs(ids, mask, image_features=features)
                layout = image_layout(keep_all, features)
                lengths.append(layout.length)
                check_budget(budget, layout.length, "the image tokens of this model" if patch_grid else
                             f"the {layout.length} positions image {image_path.name} takes unpruned")
                for m, wrapper in wrappers.items():
                    if m != "fastv":  # the selection never looks at the text
                        sel = wrapper.prepare_inputs(ids, mask, image_features=features).selection
                        kept[m] = sel.indices[0].tolist()
            assert layout is not None
            if "fastv" in wrappers:
                wrappers["fastv"](ids, mask, image_features=features, logits_to_keep=1)
                assert wrappers["fastv"].last_selection is not None
                kept["fastv"] = wrappers["fastv"].last_selection.indices[0].tolist()
            for m, counter in counters.items():
                counter.update(layout, kept[m], patches)
            if stats is not None:
                if prepared is None:
                    prepared = keep_all.prepare_inputs(ids, mask, image_features=features)
                spans = prepared.image_spans[0]
                if len(spans) != 1:
                    raise ValueError(f"question {example.sample.question_id} has {len(spans)} images; the "
                                     "attention analysis needs exactly one per prompt")
                weights = decoder_attention_rows(model, prepared.inputs_embeds, prepared.attention_mask,
                                                 prepared.position_ids, full_layer=fastv_layer - 1)
                places = None
                if not patch_grid or layout.tokens.size != layout.length:
                    nan = np.full(layout.length, np.nan)
                    placed = layout.view >= 0
                    places = (np.where(placed, layout.row, nan), np.where(placed, layout.col, nan))
                stats.update([w[0] for w in weights], spans[0], prepared.attention_mask[0].cpu(), places)
            done += 1
            if progress is not None:
                progress(done, len(dataset))
    if not patch_grid:
        notes.append(f"object recall needs one fixed patch grid (LLaVA-1.5); not computed for {type(model).__name__}")
    elif objects is None:
        notes.append("no objects file: object recall is not computed")
    elif images_with_objects < images:
        notes.append(f"{images - images_with_objects} of {images} images are not in the objects file: "
                     "object recall counts only the others")
    if not settings.attention:
        notes.append("attention analysis skipped")
    for m, why in skipped.items():
        notes.append(f"{m} skipped: {why}")
    return {
        "family": type(model).__name__,
        "coordinates": "patch" if patch_grid else "relative",
        "views": list(view_names or ("image",)),
        "anyres_split": settings.anyres_split if is_anyres else None,
        "budget": budget,
        "variance_threshold": settings.variance_threshold,
        "fastv_layer": fastv_layer,
        "seed": settings.seed,
        "samples": done,
        "images": images,
        "images_with_objects": images_with_objects if objects is not None else None,
        "image_positions": {"min": min(lengths), "max": max(lengths), "mean": sum(lengths) / len(lengths)}
        if lengths else None,
        "grid": {"rows": grid.rows, "cols": grid.cols, "tokens": grid.tokens, "centre": list(grid.centre)},
        "object_recall_chance": budget / grid.tokens if patch_grid else None,
        "methods": {m: {"config": configs[m].to_dict(), **counters[m].summary()} for m in counters},
        "skipped": skipped,
        "attention": stats.summary() if stats is not None else None,
        "notes": notes,
    }
