"""PrunedLlava on the tiny checkpoint, checked against the unmodified model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from adaptive_svdprune.models.llava import PrunedLlava, prune_llava
from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig, select_tokens

from .conftest import QUESTIONS

NEW = 5  # new tokens per generation: enough to compare, cheap on CPU


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def _new(model: Any, inputs: dict, **kw: Any) -> torch.Tensor:
    out = model.generate(**inputs, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, **kw)
    return out[:, inputs["input_ids"].shape[1] :] if "input_ids" in inputs and out.shape[1] > NEW else out


FULL = {
    "none": lambda t: BaselineConfig("none"),
    "svd-budget-T": lambda t: SVDPruneConfig(budget=t),
    "svd-budget-over-T": lambda t: SVDPruneConfig(budget=t + 100),
    "uniform-T": lambda t: BaselineConfig("uniform", budget=t),
    "l2norm-T": lambda t: BaselineConfig("l2norm", budget=t),
}


@pytest.mark.parametrize("make_config", list(FULL.values()), ids=list(FULL))
def test_keeping_every_token_equals_the_stock_model(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable[..., dict], make_config: Callable[[int], Any]
) -> None:
    model = tiny[0]
    tokens = model.config.image_seq_length
    inputs = make_inputs(images[:2], QUESTIONS[1:3])  # different lengths: left padding in play
    assert (inputs["attention_mask"] == 0).any()
    pruned = prune_llava(model, make_config(tokens))
    assert torch.equal(_new(pruned, inputs), _new(model, inputs))
    with torch.no_grad():
        stock = model(**inputs, position_ids=_positions(inputs["attention_mask"])).logits
    assert torch.equal(pruned(**inputs).logits, stock)
    assert pruned.last_kept_counts == [tokens, tokens]


def test_language_model_receives_k_image_positions(tiny: tuple[Any, Any], images: list, make_inputs: Callable) -> None:
    model = tiny[0]
    seen: list[int] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        seen.append(kwargs["inputs_embeds"].shape[1])

    inputs = make_inputs(images[:1], QUESTIONS[:1])
    tokens = model.config.image_seq_length
    handle = model.model.language_model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        full = prune_llava(model, BaselineConfig("none"))(**inputs)
        for k in (64, 16, 1):
            seen.clear()
            pruned = prune_llava(model, SVDPruneConfig(budget=k))
            out = pruned(**inputs, use_cache=True)
            assert seen == [inputs["input_ids"].shape[1] - tokens + k]
            assert out.cache.get_seq_length() == seen[0] == pruned.last_cache_lengths[0]
            assert out.logits.shape[1] == full.logits.shape[1] - (tokens - k)
            gen = pruned.generate(**inputs, max_new_tokens=3, min_new_tokens=3, return_dict_in_generate=True)
            assert gen.cache.get_seq_length() == seen[0] + 2  # prompt + all but the last new token
            assert seen[1:] == [seen[0], 1, 1]  # generate: one prefill of the collapsed prompt, then 1 token/step
    finally:
        handle.remove()


def test_batch_with_mixed_adaptive_counts_equals_each_sample_alone(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable
) -> None:
    pruned = prune_llava(tiny[0], SVDPruneConfig(variance_threshold=0.5))
    inputs = make_inputs(images, QUESTIONS)
    batch_ids = _new(pruned, inputs)
    batch_logits = pruned(**inputs).logits[:, -1]
    counts = pruned.last_kept_counts
    assert len(counts) == 4 and len(set(counts)) > 1, counts
    for i in range(4):
        alone = make_inputs(images[i : i + 1], QUESTIONS[i : i + 1])
        assert torch.equal(_new(pruned, alone), batch_ids[i : i + 1])
        torch.testing.assert_close(pruned(**alone).logits[0, -1], batch_logits[i], atol=1e-4, rtol=1e-4)
        assert pruned.last_kept_counts == [counts[i]]


def test_image_positions_hold_the_projected_kept_features(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable
) -> None:
    model = tiny[0]
    config = SVDPruneConfig(variance_threshold=0.6, max_tokens=300)
    pruned = prune_llava(model, config)
    inputs = make_inputs(images[:3], QUESTIONS[:3])
    pruned(**inputs)
    prepared, selection = pruned.last_inputs, pruned.last_selection
    assert prepared is not None and selection is not None
    features = pruned.vision_features(inputs["pixel_values"]).features
    reference = select_tokens(features, config)  # the selection runs on exactly these features
    embed = model.get_input_embeddings()
    with torch.no_grad():
        for b, idx in enumerate(selection.indices):
            assert torch.equal(idx, reference.indices[b]) and bool((idx.diff() > 0).all())
            row_ids, row_embeds = prepared.input_ids[b], prepared.inputs_embeds[b]
            image = row_ids == model.config.image_token_id
            assert int(image.sum()) == idx.numel()
            expected = model.model.multi_modal_projector(features[b, idx])
            torch.testing.assert_close(row_embeds[image], expected, atol=1e-6, rtol=1e-5)
            assert torch.equal(row_embeds[~image], embed(row_ids[~image]))


def test_several_images_per_prompt(tiny: tuple[Any, Any], images: list, make_inputs: Callable) -> None:
    model = tiny[0]
    inputs = make_inputs(images, QUESTIONS[:2], images_per_prompt=2)  # "<image><image>": one run per prompt
    full = prune_llava(model, BaselineConfig("none"))
    assert torch.equal(_new(full, inputs), _new(model, inputs))
    pruned = prune_llava(model, SVDPruneConfig(budget=8))
    pruned(**inputs)
    assert pruned.last_kept_counts == [8, 8, 8, 8]
    assert pruned.last_inputs is not None
    assert (pruned.last_inputs.input_ids == model.config.image_token_id).sum(-1).tolist() == [16, 16]
    assert [len(s) for s in pruned.last_inputs.image_spans] == [2, 2]


def test_bad_input_is_a_clear_error(tiny: tuple[Any, Any], images: list, make_inputs: Callable) -> None:
    model, processor = tiny
    config = SVDPruneConfig(budget=8)
    with pytest.raises(TypeError, match="needs a LlavaForConditionalGeneration, got Linear"):
        prune_llava(torch.nn.Linear(2, 2), config)
    with pytest.raises(TypeError, match="needs a LlavaForConditionalGeneration, got LlavaModel"):
        prune_llava(model.model, config)
    with pytest.raises(TypeError, match="config must be an SVDPruneConfig or a BaselineConfig, got dict"):
        prune_llava(model, {"budget": 8})  # type: ignore[arg-type]
    pruned = prune_llava(model, config)
    one = make_inputs(images[:1], QUESTIONS[:1])
    with pytest.raises(ValueError, match="missing pixel_values"):
        pruned.generate(input_ids=one["input_ids"], attention_mask=one["attention_mask"])
    with pytest.raises(ValueError, match="missing input_ids"):
        pruned.generate(pixel_values=one["pixel_values"])
    text_only = processor.tokenizer(["USER: hello ASSISTANT:"], return_tensors="pt")
    with pytest.raises(ValueError, match=r"prompt\(s\) \[0\] have no image placeholder"):
        pruned.generate(**text_only, pixel_values=one["pixel_values"])
    two_pixels = torch.cat([one["pixel_values"], one["pixel_values"]])
    with pytest.raises(ValueError, match="2 images were given but the prompts hold 1 image placeholders"):
        pruned(input_ids=one["input_ids"], attention_mask=one["attention_mask"], pixel_values=two_pixels)
    features = pruned.vision_features(one["pixel_values"])
    with pytest.raises(ValueError, match="either pixel_values or image_features"):
        pruned(**one, image_features=features)
    cls_pruned = prune_llava(model, BaselineConfig("cls_attention", budget=8))
    with pytest.raises(ValueError, match="needs the CLS attention"):
        cls_pruned(input_ids=one["input_ids"], attention_mask=one["attention_mask"], image_features=features)


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_wrappers_side_by_side_and_the_model_stays_stock(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable
) -> None:
    model = tiny[0]
    inputs = make_inputs(images[:2], QUESTIONS[:2])
    state = dict(vars(model))
    with torch.no_grad():
        stock_before = model(**inputs).logits
    hooks = _hooks(model)  # transformers' own output-capturing hooks, installed by the stock forward
    a = prune_llava(model, SVDPruneConfig(budget=16))
    b = prune_llava(model, SVDPruneConfig(variance_threshold=0.9))
    out_a, out_b = _new(a, inputs), _new(b, inputs)
    assert a.last_kept_counts == [16, 16] and b.last_kept_counts != a.last_kept_counts
    assert torch.equal(_new(a, inputs), out_a)  # b ran in between: no shared state
    assert not torch.equal(out_a, out_b)
    a.config = BaselineConfig("uniform", budget=8)  # a search trial swaps the config, reusing the model
    assert torch.equal(_new(a, inputs), _new(prune_llava(model, BaselineConfig("uniform", budget=8)), inputs))
    assert a.last_kept_counts == [8, 8]
    with pytest.raises(TypeError, match="config must be"):
        a.config = "svd"  # type: ignore[assignment]
    assert isinstance(a, PrunedLlava) and "uniform" in repr(a)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, stock_before)
    assert dict(vars(model)).keys() == state.keys() and _hooks(model) == hooks
    assert "forward" not in vars(model) and "generate" not in vars(model)


@pytest.mark.parametrize(
    "config",
    [SVDPruneConfig(variance_threshold=0.6), BaselineConfig("cls_attention", budget=24)],
    ids=["svd-adaptive", "cls-attention"],
)
def test_cached_features_equal_the_pixel_path(
    tiny: tuple[Any, Any], images: list, make_inputs: Callable, config: Any
) -> None:
    pruned = prune_llava(tiny[0], config)
    inputs = make_inputs(images[:2], QUESTIONS[:2])
    text = {k: v for k, v in inputs.items() if k != "pixel_values"}
    cached = pruned.vision_features(inputs["pixel_values"], cls_attention=True)
    assert torch.equal(_new(pruned, text, image_features=cached), _new(pruned, inputs))
    counts = pruned.last_kept_counts
    logits = pruned(**inputs).logits
    assert torch.equal(pruned(**text, image_features=cached).logits, logits)
    assert pruned.last_kept_counts == counts
    if config.method == "svd":  # a plain tensor works when no CLS attention is needed
        assert torch.equal(pruned(**text, image_features=cached.features).logits, logits)


def test_generation_produces_tokens(tiny: tuple[Any, Any], images: list, make_inputs: Callable) -> None:
    model, processor = tiny
    assert processor.tokenizer.padding_side == "left"
    pruned = prune_llava(model, SVDPruneConfig(budget=32))
    out = pruned.generate(**make_inputs(images[:1], QUESTIONS[:1]), max_new_tokens=6)
    assert out.shape == (1, 6)
    assert model.generation_config.eos_token_id not in out[0, :2].tolist()
    assert processor.batch_decode(out, skip_special_tokens=True)[0].strip()
