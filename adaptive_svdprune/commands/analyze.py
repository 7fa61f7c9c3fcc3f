"""``adaptive-svdprune analyze``: positional bias, object recall and attention shares of pruning methods.

Writes ``OUT/analysis.json`` (strict JSON) and PNGs (see :mod:`adaptive_svdprune.analysis.plots`)::

    {
      "model", "task", "data", "split", "objects_file" (null when none), "out",
      "budget", "variance_threshold", "fastv_layer", "seed", "samples" (questions), "images",
      "images_with_objects" (null without objects file),
      "grid": {"rows", "cols", "tokens", "centre": [row, col]},      # from image_size / patch_size
      "object_recall_chance": budget / tokens,                       # what random keeping recalls on average
      "methods": {name: {
          "config": {...},                                           # SVDPruneConfig / BaselineConfig.to_dict()
          "samples", "kept_tokens_total", "kept_tokens_mean",
          "heatmap": rows x cols keep counts (sum == kept_tokens_total),
          "mean_row", "mean_col",                                    # mean position of kept tokens
          "row_profile": [rows], "col_profile": [cols],              # share of kept tokens per row / column
          "object_recall" (null without objects), "object_patches", "object_patches_kept", "samples_with_objects"}},
      "attention": null (--no-attention) or {
          "samples", "layers", "groups": ["instruction", "vision", "response"],
          "shares": {group: [per decoder layer]},                    # last token, head mean; sum to 1 per layer
          "group_tokens_mean": {group: tokens},
          "position_scores": {"layer", "schemes": ["all_queries", "last_token"],
                              scheme: {"scores": [tokens], "mean_row", "mean_col"}}},
      "notes": [str],
      "figures": {name: file name in OUT}
    }

Example:
    adaptive-svdprune analyze --model shapes --task gqa --data DIR --budget 32 --out analysis/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_METHODS", "HELP", "add_arguments", "run"]

HELP = ("Positional bias (keep heat maps, mean kept row/column), object recall and attention shares of pruning "
        "methods over a data set.")

DEFAULT_METHODS = "svd,random,uniform,l2norm,cls_attention,fastv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``analyze`` options to ``parser``."""
    parser.add_argument("--model", default="tiny", help="'tiny' (default), 'shapes', a hub id or a local folder")
    parser.add_argument("--task", required=True, help="gqa, textvqa or jsonl")
    parser.add_argument("--data", required=True, help="the task's folder in the official layout (or the JSONL file)")
    parser.add_argument("--split", default=None, help="the task's split (default: the LLaVA-1.5 protocol's)")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    parser.add_argument("--budget", type=int, default=32, help="tokens kept per image by every method (default 32)")
    parser.add_argument("--variance-threshold", type=float, default=0.9, help="SVD-Prune epsilon (default 0.9)")
    parser.add_argument("--fastv-layer", type=int, default=None,
                        help="FastV's pruning layer (default 2, or the last possible one of a shallower model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default 0)")
    parser.add_argument("--objects", default=None,
                        help="objects file (default DATA/objects.json when present; object recall needs it)")
    parser.add_argument("--limit", type=int, default=None, help="first N questions only")
    parser.add_argument("--ocr", action="store_true", help="TextVQA: OCR tokens in the prompt")
    parser.add_argument("--no-attention", action="store_true",
                        help="skip the unpruned model's attention analysis (Figures 1 and 2)")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--out", required=True, help="output folder (analysis.json and PNGs)")
    parser.add_argument("--json", action="store_true", help="print analysis.json to stdout")


def _methods(text: str) -> tuple[str, ...]:
    from adaptive_svdprune.analysis.run import check_methods

    return check_methods([m.strip() for m in text.split(",") if m.strip()])


def _out_dir(path: str) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".analyze-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {path!r} is not a writable folder: {err.strerror or err}") from err
    return out


def _objects_path(args: argparse.Namespace) -> Path | None:
    if args.objects is not None:
        path = Path(args.objects)
        if not path.is_file():
            raise FileNotFoundError(f"--objects {args.objects!r} does not exist")
        return path
    default = Path(args.data) / "objects.json"
    return default if default.is_file() else None


def _progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"analyze: {done}/{total} questions", file=sys.stderr, flush=True)


def _summary(result: dict[str, Any]) -> str:
    from adaptive_svdprune.commands._output import format_table

    rows = [{"method": name, "mean_row": m["mean_row"], "mean_col": m["mean_col"],
             "object_recall": "n/a" if m["object_recall"] is None else m["object_recall"]}
            for name, m in result["methods"].items()]
    centre = result["grid"]["centre"]
    lines = [f"{result['samples']} questions, {result['images']} images, budget {result['budget']} of "
             f"{result['grid']['tokens']} tokens (grid centre row {centre[0]}, col {centre[1]}; chance recall "
             f"{result['object_recall_chance']:.3f})", format_table(rows)]
    attention = result["attention"]
    if attention and attention["samples"]:
        vision = ", ".join(f"{v:.3f}" for v in attention["shares"]["vision"])
        lines.append(f"vision share of the last token's attention per layer: {vision}")
    lines += [f"note: {n}" for n in result["notes"]]
    lines.append(f"wrote {Path(result['out']) / 'analysis.json'} and {len(result['figures'])} figures")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    from adaptive_svdprune.analysis import AnalysisSettings, PatchGrid, analyze, check_budget, load_objects
    from adaptive_svdprune.analysis.plots import write_figures
    from adaptive_svdprune.commands._output import print_json
    from adaptive_svdprune.data import load_task
    from adaptive_svdprune.models.llava import load_llava
    from adaptive_svdprune.models.names import resolve_model_path

    # Cheap checks first: names, folders and geometry before any weights are read.
    methods = _methods(args.methods)
    dataset = load_task(args.task, args.data, split=args.split, limit=args.limit, ocr=args.ocr)
    if len(dataset) == 0:
        raise ValueError(f"--data {args.data!r} holds no questions for task {args.task!r}")
    path = resolve_model_path(args.model)
    grid = PatchGrid.from_model_config(AutoConfig.from_pretrained(path))
    check_budget(args.budget, grid.tokens)
    objects_file = _objects_path(args)
    objects = load_objects(objects_file, grid) if objects_file is not None else None
    out = _out_dir(args.out)
    settings = AnalysisSettings(methods, args.budget, variance_threshold=args.variance_threshold,
                                fastv_layer=args.fastv_layer, seed=args.seed, attention=not args.no_attention)

    hf_logging.disable_progress_bar()
    model, processor = load_llava(path, device=args.device, attn_implementation="eager")
    result = analyze(model, processor, dataset, settings, objects=objects, progress=_progress)
    result = {"model": args.model, "task": args.task, "data": str(args.data), "split": args.split,
              "objects_file": str(objects_file) if objects_file else None, "out": str(out), **result}
    result["figures"] = write_figures(result, out)
    text = json.dumps(result, indent=1, allow_nan=False)
    (out / "analysis.json").write_text(text + "\n", encoding="utf-8")
    if args.json:
        print_json(result)
    else:
        print(_summary(result))
    return 0
