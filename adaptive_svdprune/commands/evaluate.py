"""``adaptive-svdprune eval``: evaluate a pruning method on a task (config file plus overrides)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "Evaluate a pruned LLaVA on GQA/TextVQA/JSONL: accuracy, fidelity, kept tokens, FLOPs, latency."

EPILOG = """\
precedence: EvalConfig defaults < the --config file < a deployment --profile (its entry for the task) < the
flags given on the command line. A --profile on the command line replaces the config file's SVD-Prune keys
(variance_threshold, budget, min_tokens, max_tokens); --budget/--variance-threshold given with it still win.
A profile in the config file fills only the SVD-Prune keys that file does not set.

resume: a run appends answers to OUT/predictions.jsonl; rerunning with the same --out resumes, reusing only
answers made with the same settings (model, dtype, precision, task, data, split, prompt protocol, method and
selector settings, --anyres-split, --max-new-tokens, fidelity), recorded in OUT/run.json. --limit and
--batch-size may change.
Other settings are refused with an error naming what differs: pick another --out, or pass --overwrite to
discard the old predictions. One writer per --out at a time (OUT/.lock names the holder).
"""

# command-line flag -> EvalConfig key; a flag that is not given is absent from the namespace
_OVERRIDES = (
    "model", "task", "data", "method", "budget", "variance_threshold", "min_tokens", "max_tokens", "solver",
    "limit", "batch_size", "out", "profile", "max_new_tokens", "feature_cache", "devices", "accelerator",
    "strategy", "precision", "num_workers", "dtype", "split", "wandb_group", "anyres_split",
)  # fmt: skip
#: SVD-Prune keys a profile provides (a --profile flag replaces a config file's values of them).
_PROFILE_KEYS = ("variance_threshold", "budget", "min_tokens", "max_tokens", "anyres_split")


def _budget(text: str) -> int | None:
    if text.lower() in ("adaptive", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int or 'adaptive', got {text!r}") from None


def _optional_int(text: str) -> int | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int or 'none', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    given: dict[str, Any] = {"default": argparse.SUPPRESS}  # absent unless given: only explicit flags override
    parser.add_argument("--config", type=Path, help="YAML file with EvalConfig keys, or the name of a shipped one "
                        "(tiny-gqa, tiny-textvqa, llava-1.5-7b-gqa, llava-1.5-7b-textvqa)")
    parser.add_argument("--model", **given, help="'tiny', a hub id (llava-hf/llava-1.5-7b-hf) or a local folder")
    parser.add_argument("--task", **given, help="gqa, textvqa or jsonl")
    parser.add_argument("--data", **given, help="the task's folder in the official layout (or the JSONL file)")
    parser.add_argument("--split", **given, help="the task's split (default: the LLaVA-1.5 protocol's)")
    parser.add_argument("--method", **given, help="svd, none, random, uniform, l2norm, cls_attention or fastv")
    parser.add_argument("--budget", type=_budget, **given, help="kept tokens, or 'adaptive' (beats --profile)")
    parser.add_argument("--variance-threshold", type=float, **given,
                        help="SVD-Prune epsilon in (0, 1] (beats --profile)")
    parser.add_argument("--min-tokens", type=int, **given, help="adaptive SVD-Prune: lower clip (beats --profile)")
    parser.add_argument("--max-tokens", type=_optional_int, **given,
                        help="adaptive SVD-Prune: upper clip, or 'none' (beats --profile)")
    parser.add_argument("--solver", **given, help="SVD-Prune solver: auto, svd, gram or lowrank")
    parser.add_argument("--anyres-split", **given, help="LLaVA-NeXT/OneVision: global (default, one selection over "
                        "base view and crops) or per_view (one per view); per_view on another family is an error")
    parser.add_argument("--profile", **given, help="deployment profile YAML: SVD-Prune settings for --task")
    parser.add_argument("--limit", type=int, **given, help="first N questions only")
    parser.add_argument("--batch-size", type=int, **given)
    parser.add_argument("--max-new-tokens", type=int, **given)
    parser.add_argument("--feature-cache", **given, help="folder to cache vision features in (reused across runs)")
    parser.add_argument("--devices", **given, help="Lightning devices (e.g. 1, 2, auto); each question once")
    parser.add_argument("--accelerator", "--device", dest="accelerator", **given,
                        help="Lightning accelerator: auto, cpu, gpu (cuda); a GPU without CUDA is an error")
    parser.add_argument("--strategy", **given, help="Lightning strategy (auto, ddp, ddp_spawn)")
    parser.add_argument("--precision", **given, help="Lightning precision (32-true, bf16-mixed, 16-mixed, ...)")
    parser.add_argument("--dtype", **given, help="weight dtype: float32, float16 or bfloat16")
    parser.add_argument("--num-workers", type=int, **given, help="DataLoader worker processes")
    parser.add_argument("--out", **given, help="output folder (metrics.json, predictions.jsonl, run.json); "
                        "rerun to resume")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="discard the predictions already in --out instead of resuming from them")
    parser.add_argument("--ocr", action="store_true", default=None, help="TextVQA: OCR tokens in the prompt")
    parser.add_argument("--center", action="store_true", default=None,
                        help="SVD-Prune on mean-centred features (off in the paper; see EvalConfig.center)")
    parser.add_argument("--skip-bad", action="store_true", default=None,
                        help="skip and count broken images and questions holding '<image>'")
    parser.add_argument("--no-fidelity", action="store_true", help="skip the unpruned reference answers")
    parser.add_argument("--no-wandb", action="store_true", help="no Weights & Biases logging (CSV only)")
    parser.add_argument("--wandb-group", **given, help="W&B group (default: the profile, else the --out name)")
    parser.add_argument("--json", action="store_true", help="print metrics as JSON")


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`EvalConfig` of a command line: config file, then a ``--profile``, then the flags given."""
    import yaml

    from adaptive_svdprune.evaluation import EvalConfig

    data: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        from adaptive_svdprune.resources import resolve_config

        path = resolve_config(args.config, "eval")  # a file, or a packaged config's name (tiny-gqa)
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: malformed YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of EvalConfig keys, got {type(loaded).__name__}")
        data.update(loaded)
    if hasattr(args, "profile"):  # the profile beats the file's SVD-Prune keys; flags still beat the profile
        for key in _PROFILE_KEYS:
            data.pop(key, None)
        if data.get("method") == "svd" or not hasattr(args, "method"):
            data.pop("method", None)
    for key in _OVERRIDES:
        if hasattr(args, key):
            data[key] = getattr(args, key)
    for flag in ("ocr", "skip_bad", "overwrite", "center"):
        if getattr(args, flag, None):
            data[flag] = True
    if getattr(args, "no_fidelity", False):
        data["fidelity"] = False
    if getattr(args, "no_wandb", False):
        data["wandb"] = False
    if getattr(args, "json", False):  # stdout carries the JSON alone
        data["progress_bar"] = False
    return EvalConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    from adaptive_svdprune.commands._output import format_table, print_json
    from adaptive_svdprune.evaluation import run_evaluation
    from adaptive_svdprune.evaluation.run_folder import is_global_zero

    cfg = build_config(args)
    metrics = run_evaluation(cfg)
    if not is_global_zero() or not metrics:  # other ranks of a multi-process run: rank 0 prints
        return 0
    if args.json:
        print_json(metrics)
        return 0
    keys = ["accuracy", "fidelity", "mean_kept_tokens", "tflops", "tflops_unpruned_per_sample",
            "latency_s_per_sample", "samples", "skipped"]
    print(format_table([{k: metrics[k] for k in keys if k in metrics}]))
    print(f"protocol: {metrics['protocol']}; results in {cfg.out}/metrics.json and predictions.jsonl")
    return 0
