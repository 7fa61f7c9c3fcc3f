"""FLOPs counted with ``FlopCounterMode`` on the real modules, instantiated on the ``meta`` device.

The vision tower, the multi-modal projector and the causal language model (with its LM head) are built
from the config exactly as ``LlavaForConditionalGeneration`` builds them, but on ``torch.device("meta")``:
no weights, no memory, and forward passes only propagate shapes. Each forward runs under
``FlopCounterMode`` (2 FLOPs per multiply-add of mm/bmm/addmm/convolution/SDPA).

Counting the language model at every sequence length would be slow, so it is counted for two prefill
lengths and one decode step, and the exact integer coefficients of its cost formula are kept
(:class:`~adaptive_svdprune.flops._costs.ComponentCosts`), cached per config for the process.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from adaptive_svdprune.flops._costs import ComponentCosts, fit_polynomial, solve_exact

__all__ = ["FIT_LENGTHS", "build_meta_modules", "count_forward", "counted_costs"]

#: Prefill lengths counted to fit the language-model costs (a decode step after the first is counted too).
FIT_LENGTHS: tuple[int, int] = (8, 32)

_CACHE: dict[str, ComponentCosts] = {}
_LOCK = threading.Lock()


def build_meta_modules(config: Any) -> tuple[Any, Any, Any]:
    """Vision tower, projector and causal LM of a LLaVA config, on the meta device, in eval mode.

    Example:
        >>> from adaptive_svdprune.flops import load_arch_config
        >>> vision, projector, lm = build_meta_modules(load_arch_config("llava-1.5-7b"))
        >>> lm.lm_head.weight.device.type, lm.lm_head.weight.shape
        ('meta', torch.Size([32064, 4096]))
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    with torch.device("meta"):
        # SDPA, as LLaVA runs by default; eager attention has the same two products and the same count.
        vision = AutoModel.from_config(config.vision_config, attn_implementation="sdpa")
        projector = LlavaMultiModalProjector(config)
        lm = AutoModelForCausalLM.from_config(config.text_config, attn_implementation="sdpa")
    return vision.eval(), projector.eval(), lm.eval()


def count_forward(module: Any, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    """Run ``module(*args, **kwargs)`` under ``FlopCounterMode``; return ``(flops, output)``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        output = module(*args, **kwargs)
    return int(counter.get_total_flops()), output


def _cache_keyword(lm: Any) -> str:
    # transformers 5.x renamed `past_key_values` to `cache` (the old name still works, with a warning).
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


def _output_cache(output: Any) -> Any:
    # transformers >= 5.x (recent) calls it `cache`; earlier releases `past_key_values`.
    names = getattr(output, "keys", lambda: ())()
    return output["cache"] if "cache" in names else output["past_key_values"]


def _count_costs(config: Any) -> ComponentCosts:
    import torch

    vision, projector, lm = build_meta_modules(config)
    meta = torch.device("meta")
    vcfg = config.vision_config
    channels = int(getattr(vcfg, "num_channels", 3))
    pixels = torch.empty(1, channels, int(vcfg.image_size), int(vcfg.image_size), device=meta)
    vision_flops, _ = count_forward(vision, pixel_values=pixels)

    feature_width = projector.linear_1.in_features
    proj_counts = [count_forward(projector, torch.empty(1, k, feature_width, device=meta))[0] for k in (1, 2)]

    # A forward of q new positions over L cached ones costs c0 + c1 q + c2 q (q + L) (LM head on the last
    # position; projections per position; attention per query-key pair): two prefills and one decode step
    # pin the three coefficients down exactly. tests/test_flops.py checks them against direct counts at
    # other lengths.
    width = int(config.text_config.hidden_size)
    prefills = {
        n: count_forward(lm, inputs_embeds=torch.empty(1, n, width, device=meta), use_cache=True, logits_to_keep=1)
        for n in FIT_LENGTHS
    }
    cached = FIT_LENGTHS[0]
    step, _ = count_forward(
        lm,
        inputs_embeds=torch.empty(1, 1, width, device=meta),
        use_cache=True,
        logits_to_keep=1,
        **{_cache_keyword(lm): _output_cache(prefills[cached][1])},
    )
    rows = [[1, n, n * n] for n in FIT_LENGTHS] + [[1, 1, 1 + cached]]
    counts = [prefills[n][0] for n in FIT_LENGTHS] + [step]
    c0, c1, c2 = solve_exact(rows, counts)
    return ComponentCosts(
        vision=vision_flops,
        projector=fit_polynomial((1, 2), proj_counts),  # type: ignore[arg-type]
        prefill=(c0, c1, c2),
        decode=(c0 + c1 + c2, c2),  # q = 1 over L cached positions: c0 + c1 + c2 (1 + L)
    )


def counted_costs(config: Any) -> ComponentCosts:
    """Cost coefficients of ``config`` counted on meta-device modules, cached per config (JSON) for the process.

    The first call for a 7B config takes a few seconds (three language-model forwards on meta tensors);
    later calls are a dictionary look-up.

    Example:
        >>> from adaptive_svdprune.flops import load_arch_config
        >>> costs = counted_costs(load_arch_config("llava-1.5-7b"))
        >>> costs.vision, costs.projector
        (381918216192, (0, 41943040))
    """
    key = config.to_json_string(use_diff=False)
    with _LOCK:
        costs = _CACHE.get(key)
        if costs is None:
            costs = _CACHE[key] = _count_costs(config)
    return costs
