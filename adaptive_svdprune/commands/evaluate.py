"""``adaptive-svdprune eval``: evaluate a pruning method on a task (config file plus overrides)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "Evaluate a pruned LLaVA on GQA/TextVQA/JSONL: accuracy, fidelity, kept tokens, FLOPs, latency."

# command-line flag -> EvalConfig key; None values mean "not given, keep the config's"
_OVERRIDES = {
    "model": "model", "task": "task", "data": "data", "method": "method", "budget": "budget",
    "variance_threshold": "variance_threshold", "limit": "limit", "batch_size": "batch_size", "out": "out",
    "profile": "profile", "max_new_tokens": "max_new_tokens", "feature_cache": "feature_cache",
    "devices": "devices", "accelerator": "accelerator",
}  # fmt: skip


def _budget(text: str) -> int | None:
    return None if text.lower() in ("adaptive", "none") else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file with EvalConfig keys (see configs/)")
    parser.add_argument("--model", help="'tiny', a hub id (llava-hf/llava-1.5-7b-hf) or a local folder")
    parser.add_argument("--task", help="gqa, textvqa or jsonl")
    parser.add_argument("--data", help="the task's folder in the official layout (or the JSONL file)")
    parser.add_argument("--method", help="svd, none, random, uniform, l2norm, cls_attention or fastv")
    parser.add_argument("--budget", type=_budget, default=argparse.SUPPRESS, help="kept tokens, or 'adaptive'")
    parser.add_argument("--variance-threshold", type=float, help="SVD-Prune epsilon in (0, 1]")
    parser.add_argument("--profile", help="deployment profile YAML: epsilon/budget for --task")
    parser.add_argument("--limit", type=int, help="first N questions only")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--feature-cache", help="folder to cache vision features in (reused across runs)")
    parser.add_argument("--devices", help="Lightning devices (e.g. 1, 4, auto)")
    parser.add_argument("--accelerator", help="Lightning accelerator (auto, cpu, gpu)")
    parser.add_argument("--out", help="output folder (metrics.json, predictions.jsonl); rerun to resume")
    parser.add_argument("--ocr", action="store_true", default=None, help="TextVQA: OCR tokens in the prompt")
    parser.add_argument("--skip-bad", action="store_true", default=None, help="skip and count broken images")
    parser.add_argument("--no-fidelity", action="store_true", help="skip the unpruned reference answers")
    parser.add_argument("--no-wandb", action="store_true", help="no Weights & Biases logging (CSV only)")
    parser.add_argument("--json", action="store_true", help="print metrics as JSON")


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`EvalConfig` of a command line: config file first, then the flags that were given."""
    import yaml

    from adaptive_svdprune.evaluation import EvalConfig

    data: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.exists():
            raise FileNotFoundError(f"config file not found: {args.config}")
        loaded = yaml.safe_load(args.config.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config} must hold a mapping of EvalConfig keys, got {type(loaded).__name__}")
        data.update(loaded)
    for flag, key in _OVERRIDES.items():
        value = getattr(args, flag, None)
        if value is not None or (flag == "budget" and hasattr(args, "budget")):
            data[key] = int(value) if flag == "devices" and str(value).isdigit() else value
    for flag in ("ocr", "skip_bad"):
        if getattr(args, flag):
            data[flag] = True
    if args.no_fidelity:
        data["fidelity"] = False
    if args.no_wandb:
        data["wandb"] = False
    if args.json:  # stdout carries the JSON alone
        data["progress_bar"] = False
    return EvalConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    from adaptive_svdprune.commands._output import format_table, print_json
    from adaptive_svdprune.evaluation import run_evaluation

    cfg = build_config(args)
    metrics = run_evaluation(cfg)
    if args.json:
        print_json(metrics)
        return 0
    keys = ["accuracy", "fidelity", "mean_kept_tokens", "tflops_per_sample", "tflops_unpruned_per_sample",
            "latency_s_per_sample", "samples", "skipped"]
    print(format_table([{k: metrics[k] for k in keys if k in metrics}]))
    print(f"protocol: {metrics['protocol']}; results in {cfg.out}/metrics.json and predictions.jsonl")
    return 0
