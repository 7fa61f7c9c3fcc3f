"""Run the positional-bias analysis of several pruning methods over a VQA data set (``adaptive-svdprune analyze``).

For every image the vision tower runs once; its features feed every pre-projector method (their selection never
looks at the text, so it is computed once per image and counted for each of the image's questions). Per question,
the unpruned language model runs once with attention weights (for :class:`AttentionStats`) and FastV, which
ranks image tokens by the attention of the last prompt token, runs through the stock wrapper on the same cached
features, so its kept positions are exactly the ones :func:`~adaptive_svdprune.models.fastv.fastv_prefill`
keeps when it generates. All counts are per question: a heat map sums to the tokens kept over all questions.

Example (the CLI does the same: ``adaptive-svdprune analyze --model tiny --task gqa --data DIR``)::

    model, processor = load_llava(tiny_llava_path(), attn_implementation="eager")
    data = load_task("gqa", "tests/fixtures/gqa", limit=2)
    result = analyze(model, processor, data, AnalysisSettings(("svd", "uniform", "fastv"), budget=32))
    result["methods"]["fastv"]["mean_row"], result["attention"]["shares"]["vision"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adaptive_svdprune.analysis.attention import AttentionStats, decoder_attentions
from adaptive_svdprune.analysis.positions import KeepCounter, ObjectPatches, PatchGrid
from adaptive_svdprune.data.dataset import VQADataset
from adaptive_svdprune.data.prompts import build_prompt
from adaptive_svdprune.models.llava import prune_llava
from adaptive_svdprune.models.vision import VisionFeatures
from adaptive_svdprune.pruning.config import (
    BaselineConfig,
    SelectorConfig,
    SVDPruneConfig,
    available_selectors,
    select_tokens,
)

__all__ = ["AnalysisSettings", "analysis_methods", "analyze", "check_budget", "check_methods",
           "default_fastv_layer", "method_config"]

#: FastV's layer in the paper (K = 2), clipped to the model's depth.
PAPER_FASTV_LAYER = 2


def analysis_methods() -> list[str]:
    """Method names ``analyze`` accepts: every registered selector but ``none`` (which keeps all tokens)."""
    return [m for m in available_selectors() if m != "none"]


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Validate method names (order kept, duplicates dropped).

    Example:
        >>> check_methods(["svd", "svd", "fastv"])
        ('svd', 'fastv')
        >>> check_methods(["svd", "magic"])
        Traceback (most recent call last):
        ...
        ValueError: unknown method 'magic'; known: ['cls_attention', 'fastv', 'l2norm', 'random', 'svd', 'uniform']
    """
    known = analysis_methods()
    if isinstance(methods, str) or not methods:
        raise ValueError(f"methods must be a non-empty list of names, got {methods!r}; known: {known}")
    for m in methods:
        if m not in known:
            raise ValueError(f"unknown method {m!r}; known: {known}")
    return tuple(dict.fromkeys(methods))


def check_budget(budget: object, tokens: int) -> int:
    """``budget`` must be an int in ``[1, tokens]`` (the image's token count).

    Example:
        >>> check_budget(600, 576)
        Traceback (most recent call last):
        ...
        ValueError: budget must be in [1, 576] (the image tokens of this model), got 600
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= tokens:
        raise ValueError(f"budget must be in [1, {tokens}] (the image tokens of this model), got {budget!r}")
    return budget


def default_fastv_layer(num_layers: int) -> int:
    """The paper's ``K = 2``, or the last possible layer of a shallower decoder (``num_layers - 1``, at least 1)."""
    return max(1, min(PAPER_FASTV_LAYER, num_layers - 1))


def method_config(method: str, budget: int, *, variance_threshold: float = 0.9, fastv_layer: int = 2,
                  seed: int = 0) -> SelectorConfig:
    """The selector config of one method at a fixed budget."""
    if method == "svd":
        return SVDPruneConfig(variance_threshold=variance_threshold, budget=budget)
    return BaselineConfig(method, budget=budget, seed=seed, fastv_layer=fastv_layer)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AnalysisSettings:
    """What :func:`analyze` measures.

    Args:
        methods: method names (see :func:`analysis_methods`).
        budget: tokens kept per image by every method.
        variance_threshold: SVD-Prune's epsilon (the rank of its leverage scores).
        fastv_layer: FastV's pruning layer; ``None``: :func:`default_fastv_layer`. The attention scores of
            Figure 2 are read in layer ``fastv_layer - 1``, the one FastV ranks with.
        seed: seed of the ``random`` baseline.
        attention: also measure the unpruned model's attention (Figures 1 and 2; needs eager attention).
    """

    methods: tuple[str, ...]
    budget: int
    variance_threshold: float = 0.9
    fastv_layer: int | None = None
    seed: int = 0
    attention: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", check_methods(self.methods))


def _by_image(dataset: VQADataset) -> Iterator[tuple[Path, list[int]]]:
    groups: dict[Path, list[int]] = {}
    for i, sample in enumerate(dataset.samples):
        groups.setdefault(Path(sample.image_path), []).append(i)
    yield from groups.items()


def _object_union(objects: ObjectPatches | None, image_path: Path) -> frozenset[int] | None:
    if objects is None or image_path.stem not in objects:
        return None
    return frozenset().union(*objects[image_path.stem])


@torch.no_grad()
def analyze(model: Any, processor: Any, dataset: VQADataset, settings: AnalysisSettings,
            objects: ObjectPatches | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Positional bias and object recall of each method, and the unpruned model's attention, over ``dataset``.

    Args:
        model: a ``LlavaForConditionalGeneration`` (loaded with ``attn_implementation="eager"`` when
            ``settings.attention``); it is not modified.
        processor: its processor.
        dataset: the questions (one image each).
        settings: see :class:`AnalysisSettings`.
        objects: image id -> object patches (:func:`~adaptive_svdprune.analysis.positions.load_objects`);
            ``None``: object recall is not computed.
        progress: called with ``(questions done, total)`` after each question.

    Returns:
        A JSON-ready dict (see ``adaptive_svdprune/commands/analyze.py`` for the schema).
    """
    grid = PatchGrid.from_model_config(model.config)
    budget = check_budget(settings.budget, grid.tokens)
    n_layers = int(model.config.text_config.num_hidden_layers)
    fastv_layer = default_fastv_layer(n_layers) if settings.fastv_layer is None else settings.fastv_layer
    configs = {m: method_config(m, budget, variance_threshold=settings.variance_threshold, fastv_layer=fastv_layer,
                                seed=settings.seed) for m in settings.methods}
    counters = {m: KeepCounter(grid) for m in configs}
    needs_cls = any("cls_attention" in c.requires for c in configs.values())
    keep_all = prune_llava(model, BaselineConfig("none"))
    fastv = prune_llava(model, configs["fastv"]) if "fastv" in configs else None
    stats = AttentionStats(grid.cols, score_layer=fastv_layer - 1) if settings.attention else None
    dtype = next(model.parameters()).dtype
    done, images, images_with_objects = 0, 0, 0
    for image_path, indices in _by_image(dataset):
        features: VisionFeatures | None = None
        kept: dict[str, list[int]] = {}
        patches = _object_union(objects, image_path)
        images += 1
        images_with_objects += patches is not None
        for i in indices:
            example = dataset[i]
            inputs = processor(images=example.image, text=build_prompt(processor, example.question_text),
                               return_tensors="pt")
            if features is None:  # once per image, shared by every method and question
                features = keep_all.vision_features(inputs["pixel_values"].to(dtype), cls_attention=needs_cls)
                if features.features.shape[1] != grid.tokens:
                    raise ValueError(f"the vision tower gives {features.features.shape[1]} tokens per image, "
                                     f"not the {grid.rows}x{grid.cols} grid of its config")
                context = ({"cls_attention": features.cls_attention}
                           if needs_cls and features.cls_attention is not None else {})
                for m, config in configs.items():
                    if m != "fastv":
                        kept[m] = select_tokens(features.features, config, **context).indices[0].tolist()
            if fastv is not None:
                fastv(inputs["input_ids"], inputs["attention_mask"], image_features=features, logits_to_keep=1)
                assert fastv.last_selection is not None
                kept["fastv"] = fastv.last_selection.indices[0].tolist()
            for m, counter in counters.items():
                counter.update(kept[m], patches)
            if stats is not None:
                prepared = keep_all.prepare_inputs(inputs["input_ids"], inputs["attention_mask"],
                                                   image_features=features)
                spans = prepared.image_spans[0]
                if len(spans) != 1:
                    raise ValueError(f"question {example.sample.question_id} has {len(spans)} images; the "
                                     "attention analysis needs exactly one per prompt")
                weights = decoder_attentions(model, prepared.inputs_embeds, prepared.attention_mask,
                                             prepared.position_ids)
                stats.update([w[0] for w in weights], spans[0], prepared.attention_mask[0].cpu())
            done += 1
            if progress is not None:
                progress(done, len(dataset))
    notes = []
    if objects is None:
        notes.append("no objects file: object recall is not computed")
    elif images_with_objects < images:
        notes.append(f"{images - images_with_objects} of {images} images are not in the objects file: "
                     "object recall counts only the others")
    if not settings.attention:
        notes.append("attention analysis skipped")
    return {
        "budget": budget,
        "variance_threshold": settings.variance_threshold,
        "fastv_layer": fastv_layer,
        "seed": settings.seed,
        "samples": done,
        "images": images,
        "images_with_objects": images_with_objects if objects is not None else None,
        "grid": {"rows": grid.rows, "cols": grid.cols, "tokens": grid.tokens, "centre": list(grid.centre)},
        "object_recall_chance": budget / grid.tokens,
        "methods": {m: {"config": configs[m].to_dict(), **counters[m].summary()} for m in configs},
        "attention": stats.summary() if stats is not None else None,
        "notes": notes,
    }
