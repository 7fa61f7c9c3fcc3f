"""FLOPs accounting: meta-device counts vs closed form, monotonicity, the paper's 84.8%, errors."""

from __future__ import annotations

import inspect
import itertools
import os
import sys

import numpy as np
import pytest
import torch

from adaptive_svdprune.flops import (
    DEFAULT_NEW_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    FlopsBreakdown,
    analytic_costs,
    batch_flops,
    build_meta_modules,
    bundled_archs,
    count_flops,
    count_forward,
    counted_costs,
    image_token_count,
    kv_cache_bytes,
    load_arch_config,
    selection_flops,
)
from adaptive_svdprune.flops._costs import fit_polynomial

MODELS = ["llava-1.5-7b", "llava-1.5-13b"]
COMPONENTS = ["vision", "selection", "projector", "llm_prefill", "decode", "total"]


@pytest.fixture(scope="module")
def tiny_config():
    """A LLaVA config small enough to count in milliseconds, with grouped-query attention and head_dim."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=28,
        patch_size=7, projection_dim=16,
    )  # fmt: skip
    text = LlamaConfig(
        hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, vocab_size=100,
    )  # fmt: skip
    return LlavaConfig(vision_config=vision, text_config=text, image_token_id=99)


def _components(row: FlopsBreakdown) -> dict[str, int]:
    return {name: getattr(row, name) for name in COMPONENTS}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("prompt", "new"), [(0, 1), (57, 1), (300, 16)], ids=["bare", "default", "long"])
def test_counted_matches_analytic(model: str, prompt: int, new: int) -> None:
    for kept in (576, 192, 64, 16):
        counted = count_flops(model, kept, prompt_tokens=prompt, new_tokens=new, method="counted")
        analytic = count_flops(model, kept, prompt_tokens=prompt, new_tokens=new, method="analytic")
        for name, value in _components(counted).items():
            assert value == pytest.approx(getattr(analytic, name), rel=1e-2), (kept, name)


def test_counted_matches_analytic_with_gqa(tiny_config) -> None:
    assert counted_costs(tiny_config) == analytic_costs(tiny_config)


@pytest.mark.parametrize("positions", [1, 5, 50, 200])
def test_fitted_costs_match_direct_counts_off_the_fit_points(tiny_config, positions: int) -> None:
    # The 7B/13B coefficients equal the closed form exactly (above); this checks the fitted formula itself
    # against direct counts at lengths it was not fitted on.
    costs = counted_costs(tiny_config)
    _, projector, lm = build_meta_modules(tiny_config)
    meta = torch.device("meta")
    prefill, out = count_forward(
        lm, inputs_embeds=torch.empty(1, positions, 48, device=meta), use_cache=True, logits_to_keep=1
    )
    assert prefill == costs.prefill_flops(positions)
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    keyword = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
    step, _ = count_forward(lm, inputs_embeds=torch.empty(1, 1, 48, device=meta), logits_to_keep=1, **{keyword: cache})
    assert step == costs.decode_flops(positions, 2)  # the one step after the prefill
    kept = min(positions, 16)
    assert count_forward(projector, torch.empty(1, kept, 32, device=meta))[0] == costs.projector_flops(kept)


def test_decode_flops_is_the_sum_of_its_steps() -> None:
    costs = counted_costs(load_arch_config("llava-1.5-7b"))
    d0, d1 = costs.decode
    positions, new = 73, 9
    assert costs.decode_flops(positions, new) == sum(d0 + d1 * (positions + j) for j in range(new - 1))
    assert costs.decode_flops(positions, 1) == costs.decode_flops(positions, 0) == 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("solver", ["svd", "gram", "lowrank", None])
def test_flops_rise_with_kept_tokens(model: str, solver: str | None) -> None:
    kept = [*range(0, 576, 8), 575, 576]
    rows = batch_flops(model, kept, [57] * len(kept), 4, selection_solver=solver)
    totals = [row.total for row in rows]
    assert all(a < b for a, b in itertools.pairwise(totals))
    for name in ("projector", "llm_prefill", "decode", "kv_cache_bytes"):
        values = [getattr(row, name) for row in rows]
        assert all(a < b for a, b in itertools.pairwise(values)), name


@pytest.mark.parametrize("model", MODELS)
def test_all_tokens_is_the_unpruned_baseline(model: str) -> None:
    full = count_flops(model)
    assert full.tokens == 576 and full.selection == 0
    assert full.reduction_pct(count_flops(model, 576)) == 0.0


def test_reproduces_the_paper_headline_with_defaults() -> None:
    assert (DEFAULT_PROMPT_TOKENS, DEFAULT_NEW_TOKENS) == (57, 1)
    full, pruned = count_flops("llava-1.5-7b", 576), count_flops("llava-1.5-7b", 16)
    assert pruned.vision == full.vision > 0  # the vision encoder is included
    assert abs(pruned.reduction_pct(full) - 84.8) <= 0.3


def test_component_values_by_hand_for_7b() -> None:
    row = count_flops("llava-1.5-7b", 16, prompt_tokens=10, new_tokens=3, selection_solver=None)
    layer_per_position = 8 * 4096**2 + 6 * 4096 * 11008
    assert row.projector == 16 * 2 * (1024 * 4096 + 4096 * 4096)
    n = 26
    assert row.llm_prefill == 32 * (n * layer_per_position + 4 * n * n * 4096) + 2 * 4096 * 32064
    steps = [32 * (layer_per_position + 4 * (n + j) * 4096) + 2 * 4096 * 32064 for j in (1, 2)]
    assert row.decode == sum(steps)
    assert row.kv_cache_bytes == 2 * 32 * 4096 * (n + 2) * 2


def test_kv_cache_bytes_match_a_real_cache(tiny_config) -> None:
    _, _, lm = build_meta_modules(tiny_config)
    lm = lm.to(torch.bfloat16)
    out = lm(inputs_embeds=torch.empty(1, 11, 48, device="meta", dtype=torch.bfloat16), use_cache=True)
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    stored = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert kv_cache_bytes(tiny_config, 11, "bf16") == kv_cache_bytes(tiny_config, 11, torch.bfloat16) == stored
    assert kv_cache_bytes(tiny_config, 11, "fp32") == 2 * stored


def test_batch_flops_is_per_sample(tiny_config) -> None:
    rows = batch_flops(tiny_config, [16, 4, np.int64(0)], [5, torch.tensor(9), 2], [1, 3, 2], selection_rank=[3, 2, 1])
    assert [r.tokens for r in rows] == [16, 4, 0]
    expected = [count_flops(tiny_config, k, prompt_tokens=t, new_tokens=m, selection_rank=r)
                for k, t, m, r in [(16, 5, 1, 3), (4, 9, 3, 2), (0, 2, 2, 1)]]  # fmt: skip
    assert rows == expected
    assert rows[0].selection == 0 and rows[1].selection > 0  # all 16 tokens kept: nothing pruned


def test_instantiating_7b_on_meta_uses_little_memory() -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc/self/status")

    def rss() -> int:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    config = load_arch_config("llava-1.5-7b")
    build_meta_modules(load_arch_config("llava-1.5-13b"))  # imports done, so only the instantiation is measured
    before = rss()
    modules = build_meta_modules(config)
    grown = rss() - before
    params = sum(p.numel() for m in modules for p in m.parameters())
    assert params > 6.5e9  # the real 7B (7.06e9 parameters), 28 GB in fp32 if materialised
    assert grown < 2**30, f"grew by {grown / 2**20:.0f} MiB"


def test_bundled_configs_and_local_folders(tmp_path) -> None:
    assert bundled_archs() == ["llava-1.5-13b", "llava-1.5-7b", "llava-onevision-7b", "llava-v1.6-7b", "qwen2.5-vl-7b"]
    config = load_arch_config("llava-1.5-13b")
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (5120, 40)
    assert image_token_count(config) == 576
    config.save_pretrained(tmp_path)
    local = count_flops(str(tmp_path), 32, method="analytic")
    assert local == count_flops("llava-1.5-13b", 32, method="analytic")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"config": "llava-1.5-70b"}, ValueError, "llava-1.5-7b.*local folder"),
        ({"tokens": 577}, ValueError, "577"),
        ({"tokens": -1}, ValueError, "-1"),
        ({"prompt_tokens": -5}, ValueError, "-5"),
        ({"new_tokens": -2}, ValueError, "-2"),
        ({"tokens": 16.0}, TypeError, "16.0"),
        ({"tokens": True}, TypeError, "True"),
        ({"dtype": "fp7"}, ValueError, "fp7"),
        ({"selection_solver": "qr"}, ValueError, "qr"),
        ({"method": "guess"}, ValueError, "guess"),
    ],
    ids=[
        "unknown-model",
        "too-many-tokens",
        "negative-tokens",
        "negative-prompt",
        "negative-new",
        "float",
        "bool",
        "dtype",
        "solver",
        "method",
    ],
)
def test_bad_input_gives_clear_errors(kwargs, error, match) -> None:
    kwargs = {"config": "llava-1.5-7b", "tokens": 16, **kwargs}
    with pytest.raises(error, match=match):
        count_flops(kwargs.pop("config"), kwargs.pop("tokens"), **kwargs)


def test_batch_and_config_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        batch_flops("llava-1.5-7b", [16, 32], [57], 1)
    from transformers import LlamaConfig

    with pytest.raises(ValueError, match="not a LLaVA-style config"):
        load_arch_config(LlamaConfig())
    with pytest.raises(ValueError, match="could not load"):
        load_arch_config(str(tmp_path))  # a folder with no config.json


def test_selection_flops() -> None:
    T, D = 576, 1024
    assert selection_flops(T, D, "svd") == 6 * D * T**2 + 20 * T**3 + 2 * T * T
    assert selection_flops(T, D, "gram", 40) == 2 * T * T * D + 9 * T**3 + 2 * T * 40
    assert selection_flops(2048, 64, "gram", 8) == 2 * 2048 * 64 * 64 + 9 * 64**3 + 2 * 2048 * 64 * 64 + 2 * 2048 * 8
    assert selection_flops(T, D, "gram", 40) < selection_flops(T, D, "svd", 40)

    def lowrank(rank: int) -> int:
        return selection_flops(T, D, "lowrank", rank)

    assert lowrank(16) - lowrank(1) == 2 * T * 15  # one sketch either way, only the leverage differs
    assert lowrank(16) < lowrank(17) < lowrank(64) < selection_flops(T, D, "gram", 64)  # 1, 2, 3 sketches
    # sketches of 24, 40, 72, 136, 264 columns fail for rank 300; the next (520 > 576 / 2) falls back to Gram
    assert lowrank(300) - selection_flops(T, D, "gram", 300) == lowrank(576) - selection_flops(T, D, "gram", 576)
    assert lowrank(256) < lowrank(300)
    with pytest.raises(ValueError, match="rank must be <= min"):
        selection_flops(T, D, "svd", rank=577)
    with pytest.raises(ValueError, match="T must be >= 1, got 0"):
        selection_flops(0, D)


@pytest.mark.parametrize(("T", "D"), [(576, 1024), (16, 32), (64, 64), (65, 100), (2048, 64)])
def test_auto_resolves_like_the_pruning_module(T: int, D: int) -> None:
    solvers = pytest.importorskip("adaptive_svdprune.pruning.solvers")
    resolved = solvers.resolve_solver("auto", torch.empty(1, T, D, device="meta"))
    assert selection_flops(T, D, "auto", 8) == selection_flops(T, D, resolved, 8)


def test_fit_polynomial_is_exact_or_refuses() -> None:
    assert fit_polynomial((8, 16, 32), tuple(7 + 5 * x + 3 * x * x for x in (8, 16, 32))) == (7, 5, 3)
    with pytest.raises(ValueError, match="do not fit an integer formula"):
        fit_polynomial((1, 2, 4), (0, 1, 1))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def _llava(vision_config, layers: int = 3, strategy: str = "default"):
    from transformers import LlamaConfig, LlavaConfig

    text = LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=layers, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, vocab_size=100)
    return LlavaConfig(vision_config=vision_config, text_config=text, image_token_id=99,
                       vision_feature_select_strategy=strategy, vision_feature_layer=-1)


def _siglip():
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=384, patch_size=14)


def _clip():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            image_size=336, patch_size=14, projection_dim=16)


@pytest.mark.parametrize(
    ("vision", "strategy", "tokens"),
    [(_siglip, "full", 729), (_siglip, "default", 729), (_clip, "full", 577), (_clip, "default", 576)],
    ids=["siglip-full", "siglip-default", "clip-full", "clip-default"],
)
def test_image_tokens_count_a_cls_token_only_where_the_tower_has_one(vision, strategy: str, tokens: int) -> None:
    config = _llava(vision(), strategy=strategy)
    assert image_token_count(config) == tokens
    assert count_flops(config).tokens == tokens  # the counted path, unpruned
    assert count_flops(config, 16, method="counted").tokens == 16
    with pytest.raises(ValueError, match=f"<= the {tokens} tokens"):
        count_flops(config, tokens + 1)


@pytest.mark.parametrize("fastv_layer", [1, 2, 3], ids=["K1", "K2", "K3"])
def test_fastv_counts_the_projector_on_all_tokens_and_splits_the_layers(fastv_layer: int) -> None:
    # Independent reference: a FastV model of L layers costs what a K-layer model on every token plus an
    # (L-K)-layer model on the kept tokens cost, with one LM head (each prefill/decode step counts one).
    layers, kept, text, new = 4, 16, 30, 5
    config = _llava(_clip(), layers=layers)
    fastv = count_flops(config, kept, prompt_tokens=text, new_tokens=new, fastv_layer=fastv_layer)
    full = count_flops(config, prompt_tokens=text, new_tokens=new)
    early = count_flops(_llava(_clip(), layers=fastv_layer), prompt_tokens=text, new_tokens=new)
    late = count_flops(_llava(_clip(), layers=layers - fastv_layer), kept, prompt_tokens=text, new_tokens=new,
                       selection_solver=None)
    head = 2 * 48 * 100  # LM head per position it runs on
    assert fastv.projector == full.projector  # FastV prunes inside the LLM: the projector sees all 576 tokens
    assert fastv.selection == 0 and fastv.vision == full.vision and fastv.tokens == kept
    assert fastv.llm_prefill == early.llm_prefill + late.llm_prefill - head
    assert fastv.decode == early.decode + late.decode - (new - 1) * head
    assert fastv.kv_cache_bytes == early.kv_cache_bytes + late.kv_cache_bytes
    rows = batch_flops(config, [kept, 576], [text, text], new, selection_solver=None, fastv_layer=fastv_layer)
    assert rows[0] == fastv and rows[1] == count_flops(config, prompt_tokens=text, new_tokens=new,
                                                      fastv_layer=fastv_layer)


@pytest.mark.parametrize("layer", [0, 4, True, 1.5], ids=["zero", "all-layers", "bool", "float"])
def test_fastv_layer_is_checked(layer: object) -> None:
    with pytest.raises(ValueError, match="fastv_layer must be an int in \\[1, 3\\]"):
        count_flops(_llava(_clip(), layers=4), 16, fastv_layer=layer)  # type: ignore[arg-type]
