"""``adaptive-svdprune compare``: every pruning method at several token budgets on one task, side by side.

For each method and budget the real evaluation runs (:func:`~adaptive_svdprune.evaluation.run_evaluation`, on
one loaded model and one shared vision-feature cache) and gives accuracy and TFLOPs per sample; fidelity is the
share of answers equal to the unpruned model's (the ``none`` run, computed once); object recall (the share of
object patches kept, from the data's ``objects.json``) comes from :func:`~adaptive_svdprune.analysis.analyze`.
A budget that is not below the image's token count keeps every token, which is the unpruned model: it is run
once, as method ``none``, and shown as the end point of every curve.

Writes ``comparison.json`` (strict JSON), ``comparison.csv`` and ``comparison.png`` (accuracy vs kept tokens)
under ``--out``, plus one evaluation folder per run (resumable: a rerun reuses finished runs).

Example::

    adaptive-svdprune compare --model shapes --task gqa --data runs/demo/data/gqa \\
        --methods svd,random,uniform,l2norm,cls_attention,fastv --budgets 16,32,64,128,576 --out runs/compare
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COMPARE_COLUMNS", "HELP", "add_arguments", "compare_methods", "comparison_table_rows", "csv_items",
           "plot_comparison", "run", "write_outputs"]

HELP = "Compare pruning methods at several token budgets: accuracy, fidelity, TFLOPs, object recall."
DEFAULT_METHODS = "svd,random,uniform,l2norm,cls_attention,fastv"
DEFAULT_BUDGETS = "16,32,64,128,576"
COMPARE_COLUMNS = ("method", "budget", "kept_tokens", "accuracy", "fidelity", "tflops", "object_recall")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adaptive-svdprune compare``."""
    parser.add_argument("--model", default="shapes", help="model name, hub id or folder (default: %(default)s)")
    parser.add_argument("--task", default="gqa", help="task (default: %(default)s)")
    parser.add_argument("--data", required=True, help="the task's folder in its official layout")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated (default: %(default)s)")
    parser.add_argument("--budgets", default=DEFAULT_BUDGETS, help="comma-separated (default: %(default)s)")
    parser.add_argument("--variance-threshold", type=float, default=0.9, help="SVD-Prune epsilon (default 0.9)")
    parser.add_argument("--limit", type=int, default=None, help="first N questions only")
    parser.add_argument("--ocr", action="store_true", help="TextVQA: OCR tokens in the prompt")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="answer length cap (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per batch (default: %(default)s)")
    parser.add_argument("--no-recall", action="store_true", help="skip object recall (the analysis pass)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--json", action="store_true", help="print comparison.json to stdout")


def csv_items(text: str, flag: str, kind: Callable[[str], Any]) -> list[Any]:
    """The comma-separated items of a flag's value, converted by ``kind`` (errors name the flag).

    Example:
        >>> csv_items("16, 32", "--budgets", int)
        [16, 32]
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{flag} names nothing: {text!r}")
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise ValueError(f"{flag} must be a comma-separated list of {kind.__name__}, got {text!r}") from None


def _fidelity(records: dict[str, str], reference: dict[str, str]) -> float:
    from adaptive_svdprune.metrics import AnswerFidelity

    qids = sorted(set(records) & set(reference))
    if not qids:
        raise RuntimeError("no question has both a pruned and an unpruned answer: fidelity is undefined")
    metric = AnswerFidelity()
    metric.update([records[q] for q in qids], [reference[q] for q in qids])
    return float(metric.compute())


def _answers(out: Path) -> dict[str, str]:
    from adaptive_svdprune.evaluation.predictions import read_predictions

    return {str(r["question_id"]): r["answer"] for r in read_predictions(out / "predictions.jsonl")}


def compare_methods(
    model_name: str,
    task: str,
    data: str | Path,
    methods: Sequence[str],
    budgets: Sequence[int],
    out: str | Path,
    *,
    variance_threshold: float = 0.9,
    limit: int | None = None,
    ocr: bool = False,
    max_new_tokens: int = 8,
    batch_size: int = 8,
    recall: bool = True,
    loaded: tuple[Any, Any] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Evaluate every method at every budget (plus the unpruned model once) and gather one row per run.

    Returns:
        ``{"model", "task", "data", "image_tokens", "samples", "rows": [...], "unpruned": {...}, "notes"}``;
        each row holds :data:`COMPARE_COLUMNS` (``object_recall`` is ``None`` without an objects file).
    """
    from adaptive_svdprune.analysis import PatchGrid, check_methods
    from adaptive_svdprune.analysis.run import SVD_CENTER, default_fastv_layer
    from adaptive_svdprune.evaluation import EvalConfig, run_evaluation
    from adaptive_svdprune.models.families import load_model

    methods = list(check_methods(list(methods)))
    bad = [b for b in budgets if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:  # checked before a (possibly large) model is loaded
        raise ValueError(f"budgets must be positive integers, got {bad}")
    out = Path(out)
    model, processor = loaded if loaded is not None else load_model(model_name)
    grid = PatchGrid.from_model_config(model.config)
    pruned_budgets = sorted({b for b in budgets if b < grid.tokens})
    fastv_layer = default_fastv_layer(model.config.text_config.num_hidden_layers)
    cache = out / "cache"

    def evaluate(method: str, budget: int | None) -> dict[str, Any]:
        name = "none" if method == "none" else f"{method}-{budget}"
        svd: dict[str, Any] = {"variance_threshold": variance_threshold} if method in ("svd", SVD_CENTER) else {}
        if method == SVD_CENTER:  # SVD-Prune on mean-centred features, compared as a method of its own
            method, svd["center"] = "svd", True
        cfg = EvalConfig(model=model_name, task=task, data=str(data), method=method, budget=budget, **svd,
                         fastv_layer=fastv_layer, limit=limit, ocr=ocr,
                         max_new_tokens=max_new_tokens, batch_size=batch_size, fidelity=False,
                         feature_cache=str(cache), out=str(out / "runs" / name), wandb=False, progress_bar=False)
        metrics = run_evaluation(cfg, loaded=(model, processor))
        log(f"  {name:>18}: accuracy {metrics['accuracy']:.3f}, {metrics['mean_kept_tokens']:.1f} tokens, "
            f"{metrics['tflops']:.4g} TFLOPs")
        return metrics

    quiet = logging.getLogger("lightning.pytorch")  # one Trainer per run: keep its banner out of the table
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        return _compare(evaluate, model, processor, grid, task, data, methods, pruned_budgets, budgets, out,
                        model_name=model_name, variance_threshold=variance_threshold, fastv_layer=fastv_layer,
                        limit=limit, ocr=ocr, recall=recall)
    finally:
        quiet.setLevel(level)


def _compare(evaluate: Callable[[str, int | None], dict[str, Any]], model: Any, processor: Any, grid: Any, task: str,
             data: str | Path, methods: list[str], pruned_budgets: list[int], budgets: Sequence[int], out: Path, *,
             model_name: str, variance_threshold: float, fastv_layer: int, limit: int | None, ocr: bool,
             recall: bool) -> dict[str, Any]:
    from adaptive_svdprune.analysis import AnalysisSettings, analyze, load_objects
    from adaptive_svdprune.data import load_task

    unpruned = evaluate("none", None)
    reference = _answers(out / "runs" / "none")
    recalls: dict[tuple[str, int], float | None] = {}
    notes: list[str] = []
    objects_file = Path(data) / "objects.json"
    if recall and objects_file.is_file():
        objects = load_objects(objects_file, grid)
        dataset = load_task(task, data, limit=limit, ocr=ocr)
        for budget in pruned_budgets:
            result = analyze(model, processor, dataset, AnalysisSettings(tuple(methods), budget,
                             variance_threshold=variance_threshold, fastv_layer=fastv_layer, attention=False),
                             objects=objects)
            for method, stats in result["methods"].items():
                recalls[(method, budget)] = stats["object_recall"]
    else:
        notes.append("no object recall: " + ("--no-recall" if not recall else f"no {objects_file}"))
    rows = []
    for method in methods:
        for budget in pruned_budgets:
            metrics = evaluate(method, budget)
            rows.append({"method": method, "budget": budget, "kept_tokens": metrics["mean_kept_tokens"],
                         "accuracy": metrics["accuracy"],
                         "fidelity": _fidelity(_answers(out / "runs" / f"{method}-{budget}"), reference),
                         "tflops": metrics["tflops"], "object_recall": recalls.get((method, budget))})
    if any(b >= grid.tokens for b in budgets):
        notes.append(f"budgets >= {grid.tokens} keep every token: the unpruned model (method none), run once")
    return {"model": model_name, "task": task, "data": str(data), "image_tokens": grid.tokens,
            "samples": unpruned["samples"], "protocol": unpruned["protocol"],
            "unpruned": {"method": "none", "budget": grid.tokens, "kept_tokens": unpruned["mean_kept_tokens"],
                         "accuracy": unpruned["accuracy"], "fidelity": 1.0, "tflops": unpruned["tflops"],
                         "object_recall": 1.0 if recall and objects_file.is_file() else None},
            "rows": rows, "notes": notes}


def plot_comparison(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs kept tokens, one line per method ending at the unpruned model (log-scaled token axis)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    full = result["unpruned"]
    for method in dict.fromkeys(r["method"] for r in result["rows"]):
        rows = sorted((r for r in result["rows"] if r["method"] == method), key=lambda r: r["kept_tokens"])
        xs = [r["kept_tokens"] for r in rows] + [full["kept_tokens"]]
        ys = [r["accuracy"] for r in rows] + [full["accuracy"]]
        ax.plot(xs, ys, marker="o", label=method)
    ax.axhline(full["accuracy"], color="grey", linestyle=":", linewidth=1, label="unpruned")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("kept vision tokens per image")
    ax.set_ylabel(f"accuracy ({result['task']})")
    ax.set_title(f"{result['model']} on {result['task']} ({result['samples']} questions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def comparison_table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The comparison's rows (unpruned last) with :data:`COMPARE_COLUMNS`, ``n/a`` where a value is missing."""
    rows = [*result["rows"], result["unpruned"]]
    return [{c: ("n/a" if r.get(c) is None else r[c]) for c in COMPARE_COLUMNS} for r in rows]


def write_outputs(result: dict[str, Any], out: Path) -> dict[str, str]:
    """``comparison.json``, ``comparison.csv`` and ``comparison.png`` under ``out``; returns their paths."""
    files = {"json": out / "comparison.json", "csv": out / "comparison.csv", "png": out / "comparison.png"}
    plot_comparison(result, files["png"])
    with files["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COMPARE_COLUMNS)
        writer.writeheader()
        writer.writerows([*result["rows"], result["unpruned"]])
    result["files"] = {k: str(v) for k, v in files.items()}
    files["json"].write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return result["files"]


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    from adaptive_svdprune.commands._checks import check_writable_dir
    from adaptive_svdprune.commands._output import format_table, print_json
    from adaptive_svdprune.data import available_tasks

    methods = csv_items(args.methods, "--methods", str)
    budgets = csv_items(args.budgets, "--budgets", int)
    if args.task not in available_tasks():
        raise ValueError(f"unknown task {args.task!r}; known tasks: {available_tasks()}")
    if not Path(args.data).exists():
        raise FileNotFoundError(f"--data {args.data} does not exist")
    out = check_writable_dir(args.out)
    log = sys.stderr if args.json else sys.stdout
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    def say(line: str) -> None:
        print(line, file=log, flush=True)

    result = compare_methods(args.model, args.task, args.data, methods, budgets, out,
                             variance_threshold=args.variance_threshold, limit=args.limit, ocr=args.ocr,
                             max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                             recall=not args.no_recall, log=say)
    write_outputs(result, out)
    if args.json:
        print_json(result)
    else:
        print(format_table(comparison_table_rows(result), COMPARE_COLUMNS))
        for note in result["notes"]:
            print(f"note: {note}")
        print(f"wrote {result['files']['json']}, {result['files']['csv']} and {result['files']['png']}")
    return 0
