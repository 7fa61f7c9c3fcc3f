"""Cost of one search trial vs one unpruned evaluation of the same split, measured side by side in one run.

Rows, each a full evaluation of the same questions in this process (model loaded once, beforehand):

* ``unpruned``: every vision token kept (``method="none"``), no feature cache: the baseline evaluation;
* ``trial, cold cache``: a search trial (``run_trial``: SVD-Prune at ``--eps``/``--budget``, objective) that
  computes the vision features and fills the cache, as the first trial of a search does;
* ``trial, cached``: the same trial again with a fresh output folder: vision tower skipped, as every later trial.

Ratios are against ``unpruned``. ``trial start-up`` is the time a fresh trial process needs to import
everything (NNI starts one process per trial), shown separately because it does not depend on the split size.
Defaults: the tiny model on the GQA fixtures (seconds); ``--model llava-hf/llava-1.5-7b-hf --data data/gqa
--limit 500 --dtype float16`` measures the real thing on a GPU.

Usage: python benchmarks/bench_search.py [--model tiny] [--task gqa] [--data DIR] [--limit N] [--budget 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adaptive_svdprune.commands._output import format_table
from adaptive_svdprune.evaluation import EvalConfig, run_evaluation
from adaptive_svdprune.search.trial import TrialSettings, run_trial
from benchmarks._common import machine

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def startup_seconds() -> float:
    """Wall time of a fresh interpreter importing what a trial imports."""
    code = "import nni, adaptive_svdprune.search.trial, adaptive_svdprune.evaluation"
    return timed(lambda: subprocess.run([sys.executable, "-c", code], check=True, capture_output=True))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--task", default="gqa")
    parser.add_argument("--data", default=None, help="task folder (default: the fixtures of --task)")
    parser.add_argument("--limit", type=int, default=None, help="first N questions (default: all)")
    parser.add_argument("--eps", type=float, default=0.9)
    parser.add_argument("--budget", default="64", help="token budget or 'adaptive' (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--ocr", action="store_true", help="TextVQA/JSONL: OCR tokens in the prompt")
    parser.add_argument("--no-startup", action="store_true", help="skip the trial start-up measurement")
    args = parser.parse_args()
    data = args.data or str(FIXTURES / args.task)
    params = {"variance_threshold": args.eps, "budget": args.budget if args.budget == "adaptive" else int(args.budget)}
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    common: dict[str, Any] = {"model": args.model, "task": args.task, "data": data, "batch_size": args.batch_size,
                              "limit": args.limit, "max_new_tokens": args.max_new_tokens, "ocr": args.ocr,
                              "dtype": args.dtype, "wandb": False, "fidelity": False, "progress_bar": False}

    def unpruned(out: str, limit: int | None) -> dict[str, Any]:
        return run_evaluation(EvalConfig(**{**common, "limit": limit}, method="none", budget=None, out=out))

    def trial(out: str) -> dict[str, Any]:
        settings = TrialSettings(args.task, data, model=args.model, dtype=args.dtype, batch_size=args.batch_size,
                                 limit=args.limit, max_new_tokens=args.max_new_tokens, out=out, ocr=args.ocr,
                                 feature_cache=str(work / "cache"))
        return run_trial(params, settings)

    unpruned(str(work / "warmup"), 1)  # loads the model once; every timed row reuses it
    t_unpruned, base = timed(lambda: unpruned(str(work / "unpruned"), args.limit))
    t_cold, cold = timed(lambda: trial(str(work / "trial-cold")))
    t_cached, cached = timed(lambda: trial(str(work / "trial-cached")))
    n = int(base["samples"])
    rows = [
        {"run": "unpruned", "seconds": t_unpruned, "s/sample": t_unpruned / n, "vs unpruned": 1.0,
         "kept tokens": base["mean_kept_tokens"], "TFLOPs/sample": base["tflops_per_sample"]},
        {"run": "trial, cold cache", "seconds": t_cold, "s/sample": t_cold / n, "vs unpruned": t_cold / t_unpruned,
         "kept tokens": cold["mean_kept_tokens"], "TFLOPs/sample": cold["tflops"]},
        {"run": "trial, cached", "seconds": t_cached, "s/sample": t_cached / n,
         "vs unpruned": t_cached / t_unpruned, "kept tokens": cached["mean_kept_tokens"],
         "TFLOPs/sample": cached["tflops"]},
    ]
    print(f"# machine: {machine()}")
    print(f"# model {args.model}, task {args.task} ({n} questions from {data}), eps={args.eps}, budget={args.budget}")
    print(format_table(rows))
    print(f"\ncached trial / unpruned evaluation: {t_cached / t_unpruned:.2f}x the time "
          f"({t_unpruned / t_cached:.2f}x faster)")
    if not args.no_startup:
        print(f"trial start-up (fresh process imports, paid once per NNI trial): {startup_seconds():.1f} s")


if __name__ == "__main__":
    main()
