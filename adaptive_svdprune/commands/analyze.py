"""``adaptive-svdprune analyze``: positional bias, object recall and attention shares of pruning methods.

Works for every family ``prune_model`` supports (LLaVA-1.5, LLaVA-NeXT, LLaVA-OneVision, Qwen2(.5)-VL). Where
kept tokens are counted (see :mod:`adaptive_svdprune.analysis.geometry`):

* LLaVA-1.5 (``"coordinates": "patch"``): the model's own patch grid, one cell per token; object recall from an
  objects file (the shapes world writes one) on that grid.
* LLaVA-NeXT / OneVision (``"relative"``): every kept token is placed in the image, the base view by its patch,
  a crop token by its row and column in the unpadded crop grid (which covers exactly the image), and binned onto
  the base view's patch grid; ``views`` gives the same statistics for the base view and the crops alone.
  Newlines count against the budget (``kept_positions_total``) but have no place and are not in the heat maps.
* Qwen2(.5)-VL (``"relative"``): the merged ``h/2 x w/2`` grid of each image (it varies per image), placed in
  relative coordinates and binned onto 24 x 24 cells.

In relative coordinates a cell can hold several tokens of an image, so ``keep_rate`` (kept over available per
cell) is the comparable number; ``mean_row``/``mean_col`` are in cell units (``relative * rows - 0.5``, so the
grid centre means no bias), ``mean_row_relative``/``mean_col_relative`` in ``[0, 1]``. Object recall is LLaVA-1.5
only; a method a family cannot run (``cls_attention`` without a CLS token: SigLIP, Qwen) is listed under
``skipped`` with the reason, and asking only for such methods is an error.

Writes ``OUT/analysis.json`` (strict JSON) and PNGs (see :mod:`adaptive_svdprune.analysis.plots`)::

    {
      "model", "task", "data", "split", "objects_file" (null when none or not used), "out",
      "family" (model class), "coordinates": "patch" | "relative", "views": [view names],
      "anyres_split" (null unless anyres),
      "budget", "variance_threshold", "fastv_layer", "seed", "samples" (questions), "images",
      "images_with_objects" (null without objects file),
      "image_positions": {"min", "max", "mean"},                     # unpruned language-model positions per image
      "grid": {"rows", "cols", "tokens", "centre": [row, col]},      # the heat maps' grid (tokens = cells)
      "object_recall_chance": budget / tokens (null unless "patch"), # what random keeping recalls on average
      "methods": {name: {
          "config": {...},                                           # SVDPruneConfig / BaselineConfig.to_dict()
          "samples", "kept_tokens_total", "kept_tokens_mean", "kept_positions_total",
          "heatmap": rows x cols keep counts (sum == kept_tokens_total),
          "keep_rate": rows x cols kept / available (null where no token fell),
          "mean_row", "mean_col",                                    # mean position of kept tokens, cell units
          "mean_row_relative", "mean_col_relative",                  # the same in [0, 1] image coordinates
          "row_profile": [rows], "col_profile": [cols],              # share of kept tokens per row / column
          "object_recall" (null without objects), "object_patches", "object_patches_kept", "samples_with_objects",
          "views": {view: the same statistics for that view alone}}},  # anyres only
      "skipped": {name: reason},
      "attention": null (--no-attention) or {
          "samples", "layers", "groups": ["instruction", "vision", "response"],
          "shares": {group: [per decoder layer]},                    # last token, head mean; sum to 1 per layer
          "group_tokens_mean": {group: tokens},
          "position_scores": {"layer", "schemes": ["all_queries", "last_token"],
                              scheme: {"scores": [cells], "mean_row", "mean_col"}}},  # attention mass per cell
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

#: model types whose images are a base view plus crops (``--anyres-split`` applies)
ANYRES_MODEL_TYPES = ("llava_next", "llava_onevision")

HELP = ("Positional bias (keep heat maps, mean kept row/column), object recall and attention shares of pruning "
        "methods over a data set.")

DEFAULT_METHODS = "svd,random,uniform,l2norm,cls_attention,fastv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``analyze`` options to ``parser``."""
    parser.add_argument("--model", default="tiny",
                        help="'tiny' (default), 'shapes', 'tiny-next', 'tiny-onevision', 'tiny-qwen2.5-vl', a hub id "
                        "or a local folder of a LLaVA-1.5, LLaVA-NeXT, LLaVA-OneVision or Qwen2(.5)-VL checkpoint")
    parser.add_argument("--task", required=True, help="gqa, textvqa or jsonl")
    parser.add_argument("--data", required=True, help="the task's folder in the official layout (or the JSONL file)")
    parser.add_argument("--split", default=None, help="the task's split (default: the LLaVA-1.5 protocol's)")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    parser.add_argument("--budget", type=int, default=32,
                        help="language-model positions kept per image by every method (anyres newlines included; "
                        "default 32)")
    parser.add_argument("--anyres-split", choices=("global", "per_view"), default="global",
                        help="LLaVA-NeXT/OneVision: one selection over base view and crops (global, default) or one "
                        "per view with the budget shared in proportion (per_view)")
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
    """``--out`` is (or can become) a writable folder; nothing is created until the results are written."""
    from adaptive_svdprune.commands._checks import check_writable_dir

    try:
        return check_writable_dir(path, "--out")
    except OSError as err:
        raise ValueError(f"--out {path!r} is not a writable folder: {err}") from err


def _family(path: str) -> str:
    """The checkpoint's ``model_type`` (read from its config, before any weight)."""
    from transformers import AutoConfig

    return str(AutoConfig.from_pretrained(path).model_type)


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
             "mean_row_rel": m["mean_row_relative"], "mean_col_rel": m["mean_col_relative"],
             "object_recall": "n/a" if m["object_recall"] is None else m["object_recall"]}
            for name, m in result["methods"].items()]
    grid = result["grid"]
    centre = grid["centre"]
    if result["coordinates"] == "patch":
        head = (f"budget {result['budget']} of {grid['tokens']} tokens (grid centre row {centre[0]}, col "
                f"{centre[1]}; chance recall {result['object_recall_chance']:.3f})")
    else:
        sizes = result["image_positions"]
        head = (f"budget {result['budget']} of {sizes['min']}-{sizes['max']} positions per image; kept tokens "
                f"binned by their place in the image onto {grid['rows']}x{grid['cols']} cells (centre row "
                f"{centre[0]}, col {centre[1]}; relative centre 0.5)")
    lines = [f"{result['family']}: {result['samples']} questions, {result['images']} images, {head}",
             format_table(rows)]
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
    from adaptive_svdprune.models.families import load_model
    from adaptive_svdprune.models.names import resolve_model_path

    # Cheap checks first: names, folders and geometry before any weights are read.
    methods = _methods(args.methods)
    dataset = load_task(args.task, args.data, split=args.split, limit=args.limit, ocr=args.ocr)
    if len(dataset) == 0:
        raise ValueError(f"--data {args.data!r} holds no questions for task {args.task!r}")
    path = resolve_model_path(args.model)
    model_type = _family(path)
    if args.anyres_split != "global" and model_type not in ANYRES_MODEL_TYPES:
        raise ValueError(f"--anyres-split {args.anyres_split} applies to LLaVA-NeXT/OneVision (anyres) models only; "
                         f"{args.model} is a {model_type!r} model")
    objects_file = _objects_path(args)
    objects = None
    if model_type == "llava":  # one fixed patch grid: object files and the budget check apply before loading
        grid = PatchGrid.from_model_config(AutoConfig.from_pretrained(path))
        check_budget(args.budget, grid.tokens)
        objects = load_objects(objects_file, grid) if objects_file is not None else None
    else:  # each image has its own count of positions: checked per image
        check_budget(args.budget, None)
    out = _out_dir(args.out)
    settings = AnalysisSettings(methods, args.budget, variance_threshold=args.variance_threshold,
                                fastv_layer=args.fastv_layer, seed=args.seed, attention=not args.no_attention,
                                anyres_split=args.anyres_split)

    hf_logging.disable_progress_bar()
    model, processor = load_model(path, device=args.device, attn_implementation="eager")
    result = analyze(model, processor, dataset, settings, objects=objects, progress=_progress)
    result = {"model": args.model, "task": args.task, "data": str(args.data), "split": args.split,
              "objects_file": str(objects_file) if objects_file and objects is not None else None, "out": str(out),
              **result}
    if objects_file is not None and objects is None:
        result["notes"].append(f"objects file {objects_file} ignored: its patch grid is LLaVA-1.5's")
    out.mkdir(parents=True, exist_ok=True)
    result["figures"] = write_figures(result, out)
    text = json.dumps(result, indent=1, allow_nan=False)
    (out / "analysis.json").write_text(text + "\n", encoding="utf-8")
    if args.json:
        print_json(result)
    else:
        print(_summary(result))
    return 0
