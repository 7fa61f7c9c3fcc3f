"""Prefill latency, peak memory and KV cache: unpruned LLaVA vs SVD-Prune at K tokens, measured in one run.

Three models, random weights (speed and memory do not depend on the values):

* ``tiny``: the offline tiny checkpoint (``tiny_llava_path()``);
* ``7b-shaped``: LLaVA-1.5-7B widths with reduced depth: CLIP ViT-L/14-336 tower (hidden 1024, 16 heads,
  336 px, patch 14 -> 576 tokens) with ``--vision-layers`` layers, the 2-layer GELU projector 1024 -> 4096,
  and a Llama decoder with hidden 4096, 32 heads, MLP 11008, vocabulary 32064 and ``--llm-layers`` layers.
* ``next-7b-shaped``: LLaVA-NeXT-7B (v1.6 Vicuna) the same way: the same tower and decoder widths, the anyres
  grids and newline; a 672 x 672 image gives 5 views and 2,928 positions (2,880 tokens + 48 newlines), pruned
  to ``--next-budgets`` positions (newlines included, see ``adaptive_svdprune.models.anyres``).

Prefill = one forward from pixels to the first token's logits with a KV cache, as ``generate`` does it:
vision tower + selection + projector + language-model prefill. ``llm ms`` is the language model alone
(timed with hooks). Peak memory is the growth of the resident set during the call over the resident set
before it (``VmHWM`` reset through ``/proc/self/clear_refs``; ``nan`` where unavailable). Every ratio is
against the ``unpruned`` (stock ``model.forward``) row of the same model in the same run.

Usage: python benchmarks/bench_generate.py [--models tiny,7b-shaped,next-7b-shaped] [--budgets 192,64,32,16]
       [--next-budgets 640,320,160,64] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adaptive_svdprune.commands._output import format_table
from adaptive_svdprune.models.families import load_model, prune_model
from adaptive_svdprune.models.tiny import tiny_llava_path
from adaptive_svdprune.models.tiny_next import tiny_next_path
from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig
from benchmarks._common import machine, timeit

QUESTION = "USER: <image>\nWhat is shown in this picture? Answer in one word. ASSISTANT:"


def _status_kb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def peak_extra_mb(fn: Callable[[], object]) -> float:
    """Peak resident-set growth (MB) while ``fn`` runs."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        return float("nan")
    before = _status_kb("VmRSS")
    fn()
    return (_status_kb("VmHWM") - before) / 1024


def seven_b_shaped(image_token_id: int, vision_layers: int, llm_layers: int, dtype: torch.dtype,
                   anyres: bool = False) -> Any:
    """LLaVA-1.5-7B (or, with ``anyres``, LLaVA-NeXT-7B) widths with reduced depth, random weights."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
    )

    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=vision_layers,
                              num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768,
                              hidden_act="quick_gelu")
    text = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=llm_layers,
                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32064,
                       max_position_embeddings=4096, rms_norm_eps=1e-5)
    common: dict[str, Any] = dict(vision_config=vision, text_config=text, image_token_id=image_token_id,
                                  vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(0)
    model: Any
    if anyres:
        grids = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
        model = LlavaNextForConditionalGeneration(LlavaNextConfig(**common, image_grid_pinpoints=grids))
    else:
        model = LlavaForConditionalGeneration(LlavaConfig(**common))
    return model.to(dtype).eval()


class _LlmTimer:
    """Accumulates the wall time spent inside one module's forward (benchmark-only hooks, removed by close)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.total, self._start = 0.0, 0.0
        self._handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _pre(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self.total += time.perf_counter() - self._start

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def bench_model(name: str, model: Any, processor: Any, budgets: list[int], repeats: int,
                image_size: int | None = None) -> list[dict[str, Any]]:
    inputs = dict(processor(images=_image(processor, image_size), text=QUESTION, return_tensors="pt"))
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    runners: list[tuple[str, int, Callable[[], Any]]] = [
        ("unpruned", tokens, lambda: model(**inputs, use_cache=True, logits_to_keep=1)),
    ]
    wrapped = [("wrapper, keep all", BaselineConfig("none"))]
    wrapped += [(f"svd K={k}", SVDPruneConfig(variance_threshold=0.9, budget=k)) for k in budgets]
    for label, config in wrapped:
        pruned = prune_model(model, config)
        runners.append((label, config.budget or tokens,
                        lambda p=pruned: p(**inputs, use_cache=True, logits_to_keep=1)))
    rows: list[dict[str, Any]] = []
    timer = _LlmTimer(model.model.language_model)
    try:
        with torch.inference_mode():
            # Warm-up (first-call costs: capture hooks, solver set-up); the keep-all wrapper shares the
            # unpruned row's, and skipping it saves a full-size prefill.
            for label, _, run in runners:
                if label != "wrapper, keep all":
                    run()
            for label, kept, run in runners:  # peak memory and KV cache size
                out: list[Any] = []
                peak = peak_extra_mb(lambda run=run, out=out: out.append(run()))
                cache = out.pop().cache
                kv_mb = sum(t.numel() * t.element_size() for layer in cache.layers
                            for t in (layer.keys, layer.values)) / 2**20
                rows.append({"model": name, "config": label, "kept": kept, "seq": cache.get_seq_length(),
                             "peak_mb": peak, "kv_mb": kv_mb, "_times": [], "_llm": []})
                del cache
            # Round-robin timing, so that load changes on a shared machine hit every row alike.
            for _ in range(repeats):
                for row, (_, _, run) in zip(rows, runners, strict=True):
                    timer.total = 0.0
                    row["_times"].append(timeit(run, repeats=1, warmup=0))
                    row["_llm"].append(timer.total)
    finally:
        timer.close()
    for row in rows:
        row["prefill_ms"] = 1e3 * statistics.median(row.pop("_times"))
        row["llm_ms"] = 1e3 * statistics.median(row.pop("_llm"))
    base = rows[0]
    for row in rows:
        row["speedup"] = base["prefill_ms"] / row["prefill_ms"]
        row["llm_speedup"] = base["llm_ms"] / row["llm_ms"]
        row["peak_ratio"] = row["peak_mb"] / base["peak_mb"]
        row["kv_ratio"] = row["kv_mb"] / base["kv_mb"]
    return rows


def _image(processor: Any, size: int | None = None) -> Any:
    from adaptive_svdprune.assets import draw_demo_image

    return draw_demo_image("scene", size=size or int(processor.image_processor.crop_size["height"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,7b-shaped,next-7b-shaped",
                        help="comma-separated: tiny, 7b-shaped, next-7b-shaped")
    parser.add_argument("--budgets", default="192,64,32,16", help="kept tokens per image (LLaVA-1.5 models)")
    parser.add_argument("--next-budgets", default="640,320,160,64",
                        help="kept positions per image, newlines included (next-7b-shaped; 672 x 672 image)")
    parser.add_argument("--vision-layers", type=int, default=4, help="CLIP-L layers of the 7b-shaped tower")
    parser.add_argument("--llm-layers", type=int, default=2, help="Llama layers of the 7b-shaped decoder")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per row (median; round-robin over the rows; the tiny model does >= 10)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the 7b-shaped model (default: torch's; the tiny model uses 1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    threads = args.threads or torch.get_num_threads()
    budgets = [int(k) for k in args.budgets.split(",")]
    dtype = getattr(torch, args.dtype)
    _, processor = load_model(tiny_llava_path())
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        size, model_budgets = None, budgets
        if name == "tiny":  # its matmuls are too small to split across threads (and suffer most from sharing)
            model, processor = load_model(tiny_llava_path())
            model, repeats = model.to(dtype), max(args.repeats, 10)
            torch.set_num_threads(1)
        elif name == "7b-shaped":
            _, processor = load_model(tiny_llava_path())
            model = seven_b_shaped(processor.image_token_id, args.vision_layers, args.llm_layers, dtype)
            repeats = args.repeats
            torch.set_num_threads(threads)
        elif name == "next-7b-shaped":  # the tiny NeXT processor has LLaVA-NeXT's geometry (336 px views, grids)
            _, processor = load_model(tiny_next_path())
            model = seven_b_shaped(processor.image_token_id, args.vision_layers, args.llm_layers, dtype, anyres=True)
            repeats, size, model_budgets = args.repeats, 672, [int(k) for k in args.next_budgets.split(",")]
            torch.set_num_threads(threads)
        else:
            raise SystemExit(f"unknown model {name!r}; known: tiny, 7b-shaped, next-7b-shaped")
        for row in bench_model(name, model, processor, model_budgets, repeats, size):
            rows.append({**row, "threads": torch.get_num_threads()})
        del model
        gc.collect()
    if args.json:
        print(json.dumps({"machine": machine(), "platform": platform.platform(), "rows": rows}, indent=2))
        return
    print(f"# machine: {machine()} | {os.cpu_count()} cpus | {platform.platform()}")
    print(f"# dtype {args.dtype}; 7b-shaped = CLIP-L x{args.vision_layers} layers + Llama-4096 x{args.llm_layers} "
          f"layers (next-7b-shaped: the same in LLaVA-NeXT, 672 x 672 image); batch 1; median of round-robin runs; "
          "ratios vs the unpruned row of the same model")
    columns = ["model", "threads", "config", "kept", "seq", "prefill_ms", "speedup", "llm_ms", "llm_speedup", "peak_mb",
               "peak_ratio", "kv_mb", "kv_ratio"]
    print(format_table(rows, columns))


if __name__ == "__main__":
    main()
