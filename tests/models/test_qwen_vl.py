"""PrunedQwenVL on the tiny Qwen2.5-VL checkpoint, checked against the unmodified model and its own positions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from PIL import Image

from adaptive_svdprune.assets import DEMO_IMAGES, draw_demo_image
from adaptive_svdprune.models.qwen_vl import MergedVisionFeatures, PrunedQwenVL, load_qwen_vl, prune_qwen_vl
from adaptive_svdprune.models.tiny_qwen import tiny_qwen_vl_path
from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig, select_tokens

NEW = 5  # new tokens per generation
QUESTIONS = ("What is in the image?", "Describe it.", "How many shapes are there in this picture?")


@pytest.fixture(scope="module")
def qwen() -> tuple[Any, Any]:
    torch.manual_seed(0)
    return load_qwen_vl(tiny_qwen_vl_path())


@pytest.fixture(scope="module")
def mixed_images() -> list[Image.Image]:
    """Three resolutions: 12x12, 4x8 and 10x4 merged tokens (144, 32 and 40 LM positions)."""
    imgs = [draw_demo_image(name) for name in DEMO_IMAGES]
    return [imgs[0], imgs[1].resize((224, 112)), imgs[2].resize((112, 280))]


def _chat(processor: Any, question: str, n_images: int = 1) -> str:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def _inputs(processor: Any, images: Sequence[Image.Image], questions: Sequence[str], per_prompt: Sequence[int] = ()
            ) -> dict[str, torch.Tensor]:
    per_prompt = list(per_prompt) or [1] * len(questions)
    texts = [_chat(processor, q, n) for q, n in zip(questions, per_prompt, strict=True)]
    return dict(processor(images=list(images), text=texts, return_tensors="pt", padding=True))


def _new(model: Any, inputs: dict, **kw: Any) -> torch.Tensor:
    out = model.generate(**inputs, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, **kw)
    return out[:, inputs["input_ids"].shape[1] :] if isinstance(model, torch.nn.Module) else out


@contextmanager
def _capture_positions(model: Any) -> Iterator[list[torch.Tensor]]:
    """Position ids the language model receives, one entry per call (prefill, then each decoding step)."""
    seen: list[torch.Tensor] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        seen.append(kwargs["position_ids"].clone())

    handle = model.model.language_model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


@contextmanager
def _capture_rotary_positions(model: Any) -> Iterator[list[torch.Tensor]]:
    """Position ids each rotary-embedding call of the language model gets (FastV runs the layers itself)."""
    seen: list[torch.Tensor] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        seen.append((args[1] if len(args) > 1 else kwargs["position_ids"]).clone())

    handle = model.model.language_model.rotary_emb.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def _mrope(position_ids: torch.Tensor) -> torch.Tensor:
    return position_ids[-3:]  # (4, B, L) from generate: the text row first


FULL = {
    "none": lambda t: BaselineConfig("none"),
    "svd-budget-T": lambda t: SVDPruneConfig(budget=t),
    "svd-budget-over-T": lambda t: SVDPruneConfig(budget=t + 100),
    "uniform-T": lambda t: BaselineConfig("uniform", budget=t),
    "l2norm-T": lambda t: BaselineConfig("l2norm", budget=t),
}


@pytest.mark.parametrize("make_config", list(FULL.values()), ids=list(FULL))
def test_keeping_every_token_equals_stock_generate(
    qwen: tuple[Any, Any], mixed_images: list, make_config: Callable[[int], Any]
) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    assert (inputs["attention_mask"] == 0).any()  # left padding in play
    counts = (inputs["image_grid_thw"].prod(-1) // 4).tolist()
    pruned = prune_qwen_vl(model, make_config(max(counts)))
    out = pruned.generate(**inputs, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False,
                          output_scores=True, return_dict_in_generate=True)
    stock = model.generate(**inputs, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False,
                           output_scores=True, return_dict_in_generate=True)
    assert torch.equal(out.sequences, stock.sequences[:, inputs["input_ids"].shape[1] :])
    assert all(torch.equal(a, b) for a, b in zip(out.scores, stock.scores, strict=True))
    with torch.no_grad():
        assert torch.equal(pruned(**inputs).logits, model(**inputs).logits)
    assert pruned.last_kept_counts == counts


def test_generate_returns_new_tokens_only_like_pruned_llava(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images[:2], QUESTIONS[:2])
    tokens = prune_qwen_vl(model, SVDPruneConfig(budget=8)).generate(**inputs, max_new_tokens=4, min_new_tokens=4)
    assert tokens.shape == (2, 4)


@pytest.mark.parametrize("config", [SVDPruneConfig(budget=6), SVDPruneConfig(variance_threshold=0.8),
                                    BaselineConfig("uniform", budget=7), BaselineConfig("random", budget=5)],
                         ids=["svd-6", "svd-adaptive", "uniform-7", "random-5"])
def test_kept_and_text_tokens_keep_their_unpruned_positions(
    qwen: tuple[Any, Any], mixed_images: list, config: Any
) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    with _capture_positions(model) as stock_seen, torch.no_grad():
        model(**inputs)
    pruned = prune_qwen_vl(model, config)
    with _capture_positions(model) as seen:
        pruned(**inputs)
    full, kept = stock_seen[0], seen[0]  # (3, B, L) from the stock forward, (3, B, L') from ours
    prepared = pruned.last_inputs
    assert prepared is not None and kept.shape == prepared.position_ids.shape
    ids, mask, grid = inputs["input_ids"], inputs["attention_mask"].bool(), inputs["image_grid_thw"]
    image_token = model.config.image_token_id
    for b in range(ids.shape[0]):
        real = prepared.attention_mask[b].bool()
        source = prepared.source_index[b, real]
        assert torch.equal(kept[:, b, real], full[:, b, source])
        # every text token of the unpruned prompt is there, in order, with its position
        text_cols = (mask[b] & (ids[b] != image_token)).nonzero().flatten()
        assert torch.equal(source[ids[b, source] != image_token], text_cols)
        # independent reference: a kept merged token (r, c) of an image starting at s sits at (s, s + r, s + c)
        cols = (ids[b] == image_token).nonzero().flatten()
        start_pos = int(full[0, b, cols[0]])
        w = int(grid[b, 2]) // 2
        index = source[ids[b, source] == image_token] - cols[0]
        expected = torch.stack([torch.zeros_like(index), index // w, index % w]) + start_pos
        assert torch.equal(kept[:, b, real][:, ids[b, source] == image_token], expected)
        assert torch.equal(index, pruned.last_selection.indices[b])


def test_decoding_continues_where_the_unpruned_model_would(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    with _capture_positions(model) as stock_seen:
        _new(model, inputs)
    pruned = prune_qwen_vl(model, SVDPruneConfig(budget=4))
    with _capture_positions(model) as seen:
        _new(pruned, inputs)
    assert len(seen) == len(stock_seen) == NEW
    for step in range(1, NEW):  # decoding steps: same M-RoPE positions as the unpruned model's
        assert torch.equal(_mrope(seen[step]), _mrope(stock_seen[step]))
    prepared = pruned.last_inputs
    assert prepared is not None
    lengths = prepared.attention_mask.sum(-1, keepdim=True)
    next_pos = _mrope(stock_seen[1])[0, :, :1]  # first decoding step, time row
    assert torch.equal(lengths + prepared.rope_deltas, next_pos)
    assert torch.equal(model.model.rope_deltas, prepared.rope_deltas)


def test_prefill_length_is_text_plus_k_per_image(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    # prompt 0 holds two images (576 and 32 tokens), prompt 1 one image of 40 tokens
    inputs = _inputs(processor, mixed_images, QUESTIONS[:2], per_prompt=[2, 1])
    image_token = model.config.image_token_id
    text = ((inputs["input_ids"] != image_token) & inputs["attention_mask"].bool()).sum(-1)
    lengths: list[int] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        lengths.append(kwargs["inputs_embeds"].shape[1])

    for config, counts in [(SVDPruneConfig(budget=36), [36, 32, 36]), (BaselineConfig("l2norm", budget=3), [3, 3, 3])]:
        pruned = prune_qwen_vl(model, config)
        handle = model.model.language_model.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            _new(pruned, inputs)
        finally:
            handle.remove()
        assert pruned.last_kept_counts == counts
        real = pruned.last_inputs.attention_mask.sum(-1)
        assert real.tolist() == [int(text[0]) + counts[0] + counts[1], int(text[1]) + counts[2]]
        assert lengths[-NEW] == int(real.max())  # the prefill
        assert pruned.last_cache_lengths == real.tolist()
        assert [len(s) for s in pruned.last_inputs.image_spans] == [2, 1]
    adaptive = prune_qwen_vl(model, SVDPruneConfig(variance_threshold=0.8))
    with _capture_positions(model) as seen:
        adaptive(**inputs)
    assert len(set(adaptive.last_kept_counts)) > 1  # different kept counts per image
    with _capture_positions(model) as stock_seen, torch.no_grad():
        model(**inputs)
    prepared = adaptive.last_inputs
    for b in range(2):  # two images in prompt 0: the text between and after them keeps its positions too
        real = prepared.attention_mask[b].bool()
        assert torch.equal(seen[0][:, b, real], stock_seen[0][:, b, prepared.source_index[b, real]])


def test_batch_equals_each_sample_alone(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    pruned = prune_qwen_vl(model, SVDPruneConfig(variance_threshold=0.8))
    batch = _new(pruned, _inputs(processor, mixed_images, QUESTIONS))
    counts = pruned.last_kept_counts
    for i in range(3):
        alone = _new(pruned, _inputs(processor, mixed_images[i : i + 1], QUESTIONS[i : i + 1]))
        assert pruned.last_kept_counts == counts[i : i + 1]
        assert torch.equal(alone, batch[i : i + 1])


def test_selection_runs_on_the_merged_tokens_per_image(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    config = SVDPruneConfig(variance_threshold=0.9, budget=10)
    pruned = prune_qwen_vl(model, config)
    features = pruned.vision_features(inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"])
    assert features.counts == (inputs["image_grid_thw"].prod(-1) // 4).tolist()
    assert features.features[0].shape[-1] == model.config.text_config.hidden_size
    with torch.no_grad():
        stock = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
    pruned(**inputs)
    prepared = pruned.last_inputs
    for i, (f, s) in enumerate(zip(features.features, stock, strict=True)):
        assert torch.equal(f, s)
        assert torch.equal(pruned.last_selection.indices[i], select_tokens(f[None], config).indices[0])
        row = prepared.inputs_embeds[i][prepared.input_ids[i] == model.config.image_token_id]
        assert torch.equal(row, f[pruned.last_selection.indices[i]])


@pytest.mark.parametrize("config", [SVDPruneConfig(variance_threshold=0.7), BaselineConfig("random", budget=9)],
                         ids=["svd-adaptive", "random"])
def test_cached_features_equal_the_pixel_path(qwen: tuple[Any, Any], mixed_images: list, config: Any) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    pruned = prune_qwen_vl(model, config)
    cached = pruned.vision_features(inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"])
    text = {k: v for k, v in inputs.items() if k not in ("pixel_values", "image_grid_thw")}
    assert torch.equal(_new(pruned, text, image_features=cached), _new(pruned, inputs))
    parts = MergedVisionFeatures.cat([cached[0], cached[1:]])
    assert torch.equal(pruned(**text, image_features=parts).logits, pruned(**inputs).logits)


def test_baselines_and_the_cls_attention_refusal(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    kept = {}
    for method in ("random", "uniform", "l2norm"):
        pruned = prune_qwen_vl(model, BaselineConfig(method, budget=8))
        pruned(**inputs)
        assert pruned.last_kept_counts == [8, 8, 8]
        kept[method] = [i.tolist() for i in pruned.last_selection.indices]
    assert len({str(v) for v in kept.values()}) == 3
    # uniform spreads over the merged 2-D grid: image 1 is 4 x 8 merged tokens -> 2 rows x 4 columns
    assert kept["uniform"][1] == [9, 11, 13, 15, 25, 27, 29, 31]
    with pytest.raises(ValueError, match=r"has none; use svd"):
        prune_qwen_vl(model, BaselineConfig("cls_attention", budget=8))
    pruned = prune_qwen_vl(model, SVDPruneConfig(budget=8))
    with pytest.raises(ValueError, match="cls_attention"):
        pruned.config = BaselineConfig("cls_attention", budget=8)


def test_bad_input_is_a_clear_error(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    with pytest.raises(TypeError, match=r"needs one of .* got Linear"):
        prune_qwen_vl(torch.nn.Linear(2, 2), SVDPruneConfig(budget=4))
    with pytest.raises(TypeError, match="config must be"):
        prune_qwen_vl(model, {"budget": 4})  # type: ignore[arg-type]
    pruned = prune_qwen_vl(model, SVDPruneConfig(budget=4))
    inputs = _inputs(processor, mixed_images[:2], QUESTIONS[:2])
    with pytest.raises(ValueError, match="missing image_grid_thw"):
        pruned(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="missing pixel_values"):
        pruned(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    with pytest.raises(ValueError, match="missing input_ids"):
        pruned(pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"])
    features = pruned.vision_features(inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"])
    with pytest.raises(ValueError, match="either pixel_values or image_features"):
        pruned(**inputs, image_features=features)
    with pytest.raises(ValueError, match="2 images were given but the prompts hold 1"):
        pruned(input_ids=inputs["input_ids"][:1], attention_mask=inputs["attention_mask"][:1],
               image_features=features)
    swapped = MergedVisionFeatures(features.features[::-1], features.grid_thw.flip(0))
    with pytest.raises(ValueError, match=r"placeholder runs have .* tokens but the images give"):
        pruned(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], image_features=swapped)
    with pytest.raises(NotImplementedError, match="video"):
        pruned(**inputs, video_grid_thw=torch.tensor([[2, 4, 4]]))
    with pytest.raises(ValueError, match="missing image_grid_thw"):
        pruned.vision_features(inputs["pixel_values"])
    no_cls = pruned.vision_features(inputs["pixel_values"], cls_attention=True, image_grid_thw=inputs["image_grid_thw"])
    assert all(torch.equal(a, b) for a, b in zip(no_cls.features, features.features, strict=True))


def test_wrappers_side_by_side_and_the_model_stays_stock(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images[:2], QUESTIONS[:2])
    state = set(vars(model))
    with torch.no_grad():
        stock_before = model(**inputs).logits
    a = prune_qwen_vl(model, SVDPruneConfig(budget=6))
    b = prune_qwen_vl(model, SVDPruneConfig(variance_threshold=0.9))
    out_a, out_b = _new(a, inputs), _new(b, inputs)
    assert torch.equal(_new(a, inputs), out_a) and not torch.equal(out_a, out_b)
    assert isinstance(a, PrunedQwenVL) and "svd" in repr(a).lower()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, stock_before)
    assert set(vars(model)) == state
    assert "forward" not in vars(model) and "generate" not in vars(model)


def test_tiny_checkpoint_has_native_resolution_and_a_name(qwen: tuple[Any, Any], mixed_images: list) -> None:
    from adaptive_svdprune.models.names import MODEL_NAMES, resolve_model_path

    model, processor = qwen
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    grids = processor(images=mixed_images, text=[_chat(processor, "x")] * 3, return_tensors="pt",
                      padding=True)["image_grid_thw"]
    assert grids.tolist() == [[1, 24, 24], [1, 8, 16], [1, 20, 8]]
    assert "tiny-qwen2.5-vl" in MODEL_NAMES
    assert resolve_model_path("tiny-qwen2.5-vl") == str(tiny_qwen_vl_path())


def test_prune_model_and_load_model_dispatch_to_the_qwen_wrapper() -> None:
    from adaptive_svdprune.models.families import load_model, prune_model, supported_model_classes

    assert {"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"} <= set(supported_model_classes())
    model, processor = load_model("tiny-qwen2.5-vl")
    assert isinstance(prune_model(model, SVDPruneConfig(budget=4)), PrunedQwenVL)
    assert processor.tokenizer.padding_side == "left" and processor.image_token == "<|image_pad|>"


@pytest.fixture(scope="module")
def qwen2(qwen: tuple[Any, Any]) -> Any:
    """A random tiny Qwen2-VL (no window attention, 2-D rotary in the tower) sharing the tiny tokenizer."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ref = qwen[0].config
    text = ref.text_config.to_dict()
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": text["hidden_size"], "mlp_ratio": 2, "num_heads": 4,
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ref.image_token_id,
                           video_token_id=ref.video_token_id, vision_start_token_id=ref.vision_start_token_id,
                           vision_end_token_id=ref.vision_end_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config = qwen[0].generation_config
    return model


def test_qwen2_vl_full_budget_equals_stock_and_positions_are_kept(
    qwen: tuple[Any, Any], qwen2: Any, mixed_images: list
) -> None:
    inputs = _inputs(qwen[1], mixed_images, QUESTIONS)
    full = prune_qwen_vl(qwen2, SVDPruneConfig(budget=1000))
    stock = _new(qwen2, inputs)
    assert torch.equal(_new(full, inputs), stock)
    assert torch.equal(_new(prune_qwen_vl(qwen2, BaselineConfig("fastv", budget=1000)), inputs), stock)
    with _capture_positions(qwen2) as stock_seen, torch.no_grad():
        qwen2(**inputs)
    pruned = prune_qwen_vl(qwen2, SVDPruneConfig(variance_threshold=0.8))
    with _capture_positions(qwen2) as seen:
        pruned(**inputs)
    prepared = pruned.last_inputs
    for b in range(3):
        real = prepared.attention_mask[b].bool()
        assert torch.equal(seen[0][:, b, real], stock_seen[0][:, b, prepared.source_index[b, real]])


def test_fastv_keeping_every_token_equals_stock_generate(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    pruned = prune_qwen_vl(model, BaselineConfig("fastv", budget=1000))
    assert torch.equal(_new(pruned, inputs), _new(model, inputs))
    with torch.no_grad():
        assert torch.equal(pruned(**inputs).logits, model(**inputs).logits)
    assert pruned.last_kept_counts == [144, 32, 40]


def test_fastv_keeps_k_tokens_per_image_after_its_layer_and_the_3d_positions(
    qwen: tuple[Any, Any], mixed_images: list
) -> None:
    model, processor = qwen
    inputs = _inputs(processor, mixed_images, QUESTIONS)
    fastv_layer, budget = 2, 6
    lengths: dict[int, int] = {}
    layers = model.model.language_model.layers

    def first_length(index: int) -> Callable[..., None]:
        def hook(module: Any, args: tuple) -> None:
            lengths.setdefault(index, args[0].shape[1])  # the prefill, not the decoding steps

        return hook

    handles = [layer.register_forward_pre_hook(first_length(i)) for i, layer in enumerate(layers)]
    pruned = prune_qwen_vl(model, BaselineConfig("fastv", budget=budget, fastv_layer=fastv_layer))
    try:
        with _capture_rotary_positions(model) as seen:
            _new(pruned, inputs)
    finally:
        for handle in handles:
            handle.remove()
    deltas = model.model.rope_deltas.clone()  # before the stock generate overwrites them
    with _capture_rotary_positions(model) as stock_seen:
        _new(model, inputs)
    text = ((inputs["input_ids"] != model.config.image_token_id) & inputs["attention_mask"].bool()).sum(-1)
    assert pruned.last_kept_counts == [budget] * 3 and pruned.last_selection.method == "fastv"
    assert pruned.last_cache_lengths == (text + budget).tolist()
    assert lengths[fastv_layer - 1] == inputs["input_ids"].shape[1] and lengths[fastv_layer] == int(text.max()) + budget
    # the prefill's kept positions are the unpruned ones; the decoding steps continue from the same place
    prepared = pruned.last_inputs
    assert prepared is not None and torch.equal(seen[0], prepared.position_ids)  # stage 1: every token
    for b, (start, length) in enumerate(span[0] for span in prepared.image_spans):
        image_cols = torch.arange(start, start + length)[pruned.last_selection.indices[b]]
        keep = prepared.attention_mask[b].bool().clone()
        keep[start : start + length] = False
        keep[image_cols] = True
        assert torch.equal(seen[1][:, b, -int(keep.sum()):], prepared.position_ids[:, b, keep])  # stage 2: kept
    for step in range(1, NEW):
        assert torch.equal(_mrope(seen[-step]), _mrope(stock_seen[-step]))
    next_pos = _mrope(stock_seen[-(NEW - 1)])[0, :, :1]
    assert torch.equal(deltas, next_pos - (text + budget)[:, None])


def test_fastv_batch_equals_each_sample_alone(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    pruned = prune_qwen_vl(model, BaselineConfig("fastv", budget=10))
    batch = _new(pruned, _inputs(processor, mixed_images, QUESTIONS))
    for i in range(3):
        assert torch.equal(_new(pruned, _inputs(processor, mixed_images[i : i + 1], QUESTIONS[i : i + 1])),
                           batch[i : i + 1])


def test_right_padded_inputs_are_re_padded_on_the_left(qwen: tuple[Any, Any], mixed_images: list) -> None:
    model, processor = qwen
    left = _inputs(processor, mixed_images[:2], QUESTIONS[1:3])
    processor.tokenizer.padding_side = "right"
    try:
        right = _inputs(processor, mixed_images[:2], QUESTIONS[1:3])
    finally:
        processor.tokenizer.padding_side = "left"
    assert not torch.equal(left["attention_mask"], right["attention_mask"])
    pruned = prune_qwen_vl(model, SVDPruneConfig(budget=8))
    assert torch.equal(_new(pruned, right), _new(pruned, left))
    assert bool(pruned.last_inputs.attention_mask[:, -1].all())  # new tokens follow every prompt directly
