"""LLaVA-NeXT and LLaVA-OneVision wrappers on the tiny anyres checkpoints, checked against the unmodified models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from PIL import Image

from adaptive_svdprune.assets import DEMO_IMAGES, draw_demo_image
from adaptive_svdprune.models.families import load_model, prune_model
from adaptive_svdprune.models.llava_next import AnyresFeatures, PrunedLlavaNext, PrunedLlavaOnevision
from adaptive_svdprune.models.tiny_next import tiny_next_path, tiny_onevision_path
from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig

NEW = 4
QUESTIONS = ("What is in the image?", "Describe it.", "How many shapes are there in this picture?")


@pytest.fixture(scope="module", params=["next", "onevision"])
def family(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    """``(name, model, processor)`` of one tiny anyres checkpoint."""
    path = tiny_next_path() if request.param == "next" else tiny_onevision_path()
    model, processor = load_model(path)
    return request.param, model, processor


@pytest.fixture(scope="module")
def mixed_images() -> list[Image.Image]:
    """Square, wide and tall/large images: different crop grids, unpadding and (OneVision) down-sampling."""
    a, b, c = (draw_demo_image(n) for n in DEMO_IMAGES)
    return [a, b.resize((500, 280)), c.resize((1300, 1000))]


def _prompt(processor: Any, question: str, images: int = 1) -> str:
    content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
    return str(processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True))


def _inputs(processor: Any, images: list, questions: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
    prompts = [_prompt(processor, q) for q in questions]
    return dict(processor(images=images, text=prompts, return_tensors="pt", padding=True))


def _new(model: Any, inputs: dict, **kw: Any) -> torch.Tensor:
    out = model.generate(**inputs, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, **kw)
    return out[:, inputs["input_ids"].shape[1] :] if out.shape[1] > NEW else out


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


FULL = {  # keeping everything makes the split irrelevant: both are covered once
    "none": (lambda n: BaselineConfig("none"), "global"),
    "svd-budget-all": (lambda n: SVDPruneConfig(budget=n), "per_view"),
    "uniform-all": (lambda n: BaselineConfig("uniform", budget=n), "global"),
    "l2norm-over-all": (lambda n: BaselineConfig("l2norm", budget=n + 50), "per_view"),
}


@pytest.mark.parametrize(("make_config", "split"), list(FULL.values()), ids=list(FULL))
def test_keeping_every_position_equals_the_stock_model(
    family: tuple[str, Any, Any], mixed_images: list, make_config: Callable[[int], Any], split: Any
) -> None:
    _, model, processor = family
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    image = (inputs["input_ids"] == model.config.image_token_id) & inputs["attention_mask"].bool()
    assert (inputs["attention_mask"] == 0).any()  # left padding in play
    pruned = prune_model(model, make_config(int(image.sum(-1).max())), split=split)
    assert torch.equal(_new(pruned, inputs), _new(model, inputs))
    with torch.no_grad():
        stock = model(**inputs, position_ids=_positions(inputs["attention_mask"])).logits
    assert torch.equal(pruned(**inputs).logits, stock)
    assert pruned.last_kept_counts == image.sum(-1).tolist()


def test_onevision_several_images_in_one_prompt_equal_the_stock_model(mixed_images: list) -> None:
    model, processor = load_model(tiny_onevision_path())
    prompts = [_prompt(processor, "Same?", images=2), _prompt(processor, QUESTIONS[0])]
    inputs = dict(processor(images=[mixed_images[:2], mixed_images[2:]], text=prompts, return_tensors="pt",
                            padding=True))
    assert inputs["batch_num_images"].tolist() == [2, 1]
    full = prune_model(model, BaselineConfig("none"))
    assert torch.equal(_new(full, inputs), _new(model, inputs))
    pruned = prune_model(model, SVDPruneConfig(budget=40))
    pruned(**inputs)
    assert pruned.last_kept_counts == [40, 40, 40]
    assert [len(s) for s in pruned.last_inputs.image_spans] == [2, 1]
    # several images per prompt: one view each, closed by one newline
    assert [int(im.newline_positions.numel()) for im in pruned.last_layouts[:2]] == [1, 1]


@pytest.mark.parametrize("split", ["global", "per_view"])
@pytest.mark.parametrize("budget", [64, 17, 2])
def test_language_model_receives_text_plus_k_positions_per_image(
    family: tuple[str, Any, Any], mixed_images: list, budget: int, split: Any
) -> None:
    _, model, processor = family
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    mask = inputs["attention_mask"].bool()
    text = ((inputs["input_ids"] != model.config.image_token_id) & mask).sum(-1)
    seen: list[Any] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        seen.append(kwargs["attention_mask"].sum(-1) if kwargs.get("attention_mask") is not None else None)

    pruned = prune_model(model, SVDPruneConfig(budget=budget), split=split)
    handle = model.model.language_model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        out = pruned(**inputs, use_cache=True)
    finally:
        handle.remove()
    assert pruned.last_kept_counts == [budget] * 3
    assert pruned.last_cache_lengths == (text + budget).tolist()
    assert seen[0].tolist() == (text + budget).tolist()
    assert out.cache.get_seq_length() == int((text + budget).max())


@pytest.mark.parametrize("split", ["global", "per_view"])
def test_batch_with_mixed_adaptive_counts_equals_each_sample_alone(
    family: tuple[str, Any, Any], mixed_images: list, split: Any
) -> None:
    _, model, processor = family
    pruned = prune_model(model, SVDPruneConfig(variance_threshold=0.5), split=split)
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    batch_ids = _new(pruned, inputs)
    batch_logits = pruned(**inputs).logits[:, -1]
    counts = pruned.last_kept_counts
    assert len(set(counts)) == 3, counts
    for i in range(3):
        alone = _inputs(processor, mixed_images[i : i + 1], QUESTIONS[i : i + 1])
        assert torch.equal(_new(pruned, alone), batch_ids[i : i + 1])
        torch.testing.assert_close(pruned(**alone).logits[0, -1], batch_logits[i], atol=1e-4, rtol=1e-4)
        assert pruned.last_kept_counts == [counts[i]]


@pytest.mark.parametrize("split", ["global", "per_view"])
def test_kept_positions_hold_projected_tokens_and_newlines_of_non_empty_rows(
    family: tuple[str, Any, Any], mixed_images: list, split: Any
) -> None:
    _, model, processor = family
    pruned = prune_model(model, SVDPruneConfig(budget=48), split=split)
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    pruned(**inputs)
    prepared = pruned.last_inputs
    projector, newline = model.model.multi_modal_projector, model.model.image_newline
    with torch.no_grad():
        for b, (image, kept) in enumerate(zip(pruned.last_layouts, pruned.last_selection.indices, strict=True)):
            assert bool((kept.diff() > 0).all()) and kept.numel() == 48  # original order, K positions
            is_newline = torch.isin(kept, image.newline_positions)
            kept_tokens = torch.isin(image.token_positions, kept).nonzero().flatten()
            kept_rows = set(image.rows[kept_tokens].tolist()) - {-1}
            kept_newlines = set(torch.searchsorted(image.newline_positions, kept[is_newline]).tolist())
            assert kept_newlines == kept_rows  # a newline stays exactly when its row keeps a token
            row_embeds = prepared.inputs_embeds[b][prepared.input_ids[b] == model.config.image_token_id]
            assert torch.equal(row_embeds[is_newline], newline.expand(int(is_newline.sum()), -1))
            if image is pruned.last_layouts[2] and type(model).__name__.startswith("LlavaOnevision"):
                continue  # the down-sampled grid: values come from the stock resampling (tested at full budget)
            expected = projector(image.features[kept_tokens])
            torch.testing.assert_close(row_embeds[~is_newline], expected, atol=1e-6, rtol=1e-5)


def test_per_view_shares_the_budget_in_proportion_to_view_sizes(family: tuple[str, Any, Any],
                                                               mixed_images: list) -> None:
    _, model, processor = family
    inputs = _inputs(processor, mixed_images[1:2], QUESTIONS[:1])
    pruned = prune_model(model, SVDPruneConfig(budget=200), split="per_view")
    pruned(**inputs)
    image, kept = pruned.last_layouts[0], pruned.last_selection.indices[0]
    kept_tokens = torch.isin(image.token_positions, kept)
    sizes = torch.bincount(image.views)
    per_view = torch.bincount(image.views[kept_tokens], minlength=sizes.numel())
    share = sizes / sizes.sum() * int(kept_tokens.sum())
    assert sizes.numel() >= 3 and bool(((per_view - share).abs() <= 2.5).all()), (per_view, share)
    global_ = prune_model(model, SVDPruneConfig(budget=200))
    global_(**inputs)
    assert global_.last_kept_counts == [200] and not torch.equal(global_.last_selection.indices[0], kept)


@pytest.mark.parametrize("config", [SVDPruneConfig(variance_threshold=0.6), BaselineConfig("random", budget=30),
                                    BaselineConfig("fastv", budget=30)], ids=["svd-adaptive", "random", "fastv"])
def test_cached_features_equal_the_pixel_path(family: tuple[str, Any, Any], mixed_images: list, config: Any) -> None:
    _, model, processor = family
    pruned = prune_model(model, config)
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    text = {k: v for k, v in inputs.items() if k not in ("pixel_values", "image_sizes")}
    cached = pruned.vision_features(inputs["pixel_values"], image_sizes=inputs["image_sizes"])
    assert isinstance(cached, AnyresFeatures) and len(cached) == 3
    assert torch.equal(_new(pruned, text, image_features=cached), _new(pruned, inputs))
    counts = pruned.last_kept_counts
    rebuilt = pruned.features_from_cache(pruned.cache_entries(cached))  # what a feature cache stores
    assert torch.equal(pruned(**text, image_features=rebuilt).logits, pruned(**inputs).logits)
    assert pruned.last_kept_counts == counts
    if config.method != "svd":
        assert counts == [30, 30, 30]


def test_baselines_and_cls_attention(family: tuple[str, Any, Any], mixed_images: list) -> None:
    name, model, processor = family
    inputs = _inputs(processor, mixed_images[:2], QUESTIONS[:2])
    for method in ("random", "uniform", "l2norm"):
        pruned = prune_model(model, BaselineConfig(method, budget=25), split="per_view")
        assert _new(pruned, inputs).shape == (2, NEW) and pruned.last_kept_counts == [25, 25]
    if name == "next":  # CLIP: a CLS token to attend from
        pruned = prune_model(model, BaselineConfig("cls_attention", budget=25))
        assert _new(pruned, inputs).shape == (2, NEW) and pruned.last_kept_counts == [25, 25]
    else:  # SigLIP: none
        with pytest.raises(ValueError, match=r"needs a CLS token.*SiglipVisionModel"):
            prune_model(model, BaselineConfig("cls_attention", budget=25))
    features = prune_model(model, SVDPruneConfig(budget=8)).vision_features(
        inputs["pixel_values"], cls_attention=True, image_sizes=inputs["image_sizes"])
    assert (features.cls_attention is not None) == (name == "next")  # asked for: computed where there is a CLS


def test_bad_input_is_a_clear_error(family: tuple[str, Any, Any], mixed_images: list) -> None:
    name, model, processor = family
    wrapper = PrunedLlavaNext if name == "next" else PrunedLlavaOnevision
    pruned = prune_model(model, SVDPruneConfig(budget=8))
    assert type(pruned) is wrapper and "split='global'" in repr(pruned)
    inputs = _inputs(processor, mixed_images[:2], QUESTIONS[:2])
    with pytest.raises(ValueError, match="needs image_sizes"):
        pruned(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
               pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="missing pixel_values"):
        pruned(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    one = _inputs(processor, mixed_images[:1], QUESTIONS[:1])
    with pytest.raises(ValueError, match=r"image placeholders|images were given"):
        pruned(input_ids=one["input_ids"], attention_mask=one["attention_mask"],
               pixel_values=inputs["pixel_values"], image_sizes=inputs["image_sizes"])
    with pytest.raises(ValueError, match="split must be one of"):
        prune_model(model, SVDPruneConfig(budget=8), split="per_crop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a Llava"):
        wrapper(torch.nn.Linear(2, 2), SVDPruneConfig(budget=8))


def test_the_model_stays_stock(family: tuple[str, Any, Any], mixed_images: list) -> None:
    _, model, processor = family
    inputs = _inputs(processor, mixed_images[:2], QUESTIONS[:2])
    state = dict(vars(model))
    before = _new(model, inputs)
    a = prune_model(model, SVDPruneConfig(budget=16))
    b = prune_model(model, SVDPruneConfig(budget=16), split="per_view")
    out_a = _new(a, inputs)
    _new(b, inputs)
    assert torch.equal(_new(a, inputs), out_a)
    assert torch.equal(_new(model, inputs), before)
    assert dict(vars(model)).keys() == state.keys() and "forward" not in vars(model)
