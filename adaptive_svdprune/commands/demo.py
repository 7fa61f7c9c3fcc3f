"""``adaptive-svdprune demo``: the whole product on a CPU, offline, with results a person can read.

On the bundled, trained ``shapes`` reference model (a small LLaVA-1.5-geometry model that has learned the
procedural shapes world, so its answers are right or wrong for a visual reason):

1. fresh test splits of the shapes world in the official GQA and TextVQA layouts (a data seed never used in
   training), with ``objects.json`` beside them;
2. one real NNI experiment per task (local training service, TPE, trials on a shared vision-feature cache), its
   Pareto front (accuracy vs TFLOPs) printed, saved with its plot and logged to W&B (offline);
3. a deployment profile chosen from the fronts (best accuracy within each search's median TFLOPs);
4. ``generate`` with that profile and a kept-patch overlay;
5. a method comparison (SVD-Prune, random, uniform, l2norm, cls_attention, FastV at several budgets: accuracy,
   fidelity, TFLOPs, object recall) as a table and an accuracy-vs-kept-tokens plot per task.

Every NNI manager it starts is stopped before it returns. Outputs go under ``runs/demo/``; the profile to
``profiles/demo.yaml``. ``--model tiny`` runs the same pipeline on the random-weight tiny model (accuracy ~0).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from adaptive_svdprune.commands._output import format_table, print_json

__all__ = ["DEMO_DATA_SEED", "DEMO_TASKS", "HELP", "add_arguments", "demo_trial_command", "run"]

HELP = ("Offline demo on the trained shapes reference model: NNI search per task, Pareto fronts, a profile, "
        "generate with it, a method comparison.")
DEMO_TASKS: tuple[str, ...] = ("gqa", "textvqa")
#: The demo's search space: in the shapes world an object covers 2-16 of the 576 patches, so the interesting
#: budgets are small; epsilon as in the paper's range, widened downwards. Epsilon is continuous on purpose:
#: NNI 3.0's TPE falls back to grid search on a duplicate parameter and its dispatcher then dies (KeyError in
#: receive_trial_result), which a flat objective on a small discrete space triggers. ``center`` is searched too:
#: the reference tower's features share a large mean, and uncentred leverage then ranks tokens by norm (rank-1
#: subspace), which keeps background patches; whether a task wants it is what the search finds out.
DEMO_SEARCH_SPACE: dict[str, Any] = {
    "variance_threshold": {"_type": "uniform", "_value": [0.5, 0.95]},
    "budget": {"_type": "choice", "_value": [2, 4, 8, 16, 32, 64, "adaptive"]},
    "center": {"_type": "choice", "_value": [False, True]},
}
#: Seed of the demo's test splits; the reference model was trained on other seeds (see the README's model card).
DEMO_DATA_SEED = 2026


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adaptive-svdprune demo``."""
    parser.add_argument("--model", default="shapes", help="model name, hub id or folder (default: %(default)s)")
    parser.add_argument("--tasks", default=",".join(DEMO_TASKS), help="comma-separated tasks (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=12, help="trials per task (default: %(default)s)")
    # NOTE: one trial at a time by default. With concurrent trials NNI 3.0 can hand a parameter id to two trials;
    # TPE then pops it twice and its dispatcher dies (KeyError in receive_trial_result), seen in this demo.
    parser.add_argument("--concurrency", type=int, default=1, help="trials at once (default: %(default)s)")
    parser.add_argument("--questions", type=int, default=120,
                        help="questions per generated test split (default: %(default)s)")
    parser.add_argument("--data-seed", type=int, default=DEMO_DATA_SEED,
                        help="seed of the generated test splits (default: %(default)s)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="use this folder holding <task>/ in the official layout instead of generating splits")
    parser.add_argument("--limit", type=int, default=None, help="questions per trial (default: all)")
    parser.add_argument("--compare-methods", default="svd,svd_center,random,uniform,l2norm,cls_attention,fastv",
                        help="methods of the comparison (default: %(default)s)")
    parser.add_argument("--compare-budgets", default="16,32,64,128,576",
                        help="token budgets of the comparison (default: %(default)s)")
    parser.add_argument("--no-compare", action="store_true", help="skip the method comparison")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: %(default)s)")
    parser.add_argument("--profile", type=Path, default=Path("profiles/demo.yaml"),
                        help="profile written (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, metavar="S", help="per experiment (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="TPE seed (default: %(default)s)")
    parser.add_argument("--no-wandb", action="store_true", help="do not log W&B runs")
    parser.add_argument("--json", action="store_true", help="print a JSON summary (progress goes to stderr)")


def demo_trial_command(task: str, data: Path, cache: Path, limit: int | None = None, model: str = "shapes",
                       ocr: bool = False) -> str:
    """The trial command of the demo experiments: this interpreter, the model, a shared feature cache.

    Example:
        >>> demo_trial_command("textvqa", Path("/d/textvqa"), Path("/c"), limit=2).split(" -m ")[1]
        'adaptive_svdprune.search.trial --task textvqa --data /d/textvqa --model shapes --batch-size 8 \
--max-new-tokens 8 --feature-cache /c --objective scalarized --lam 0.5 --limit 2'
    """
    words = [sys.executable, "-m", "adaptive_svdprune.search.trial", "--task", task, "--data", str(data),
             "--model", model, "--batch-size", "8", "--max-new-tokens", "8", "--feature-cache", str(cache),
             "--objective", "scalarized", "--lam", "0.5"]
    if ocr:
        words.append("--ocr")
    if limit is not None:
        words += ["--limit", str(limit)]
    return shlex.join(words)


def _search_task(task: str, args: argparse.Namespace, log: Any) -> dict[str, Any]:
    from adaptive_svdprune.commands.pareto import front_rows
    from adaptive_svdprune.commands.search import format_trial_event, write_search_outputs
    from adaptive_svdprune.search.experiment import build_experiment_config, run_experiment
    from adaptive_svdprune.search.space import search_space
    from adaptive_svdprune.tradeoffs.pareto import pareto_front

    data = (args.data_root / task).resolve()
    # TextVQA without OCR tokens: the shapes world's signs must be read from the pixels, so pruning matters
    command = demo_trial_command(task, data, (args.out / "cache").resolve(), args.limit, model=args.model,
                                 ocr=task == "textvqa" and not args.generated_data)
    space = DEMO_SEARCH_SPACE if args.generated_data else search_space()
    config = build_experiment_config(command, space, trials=args.trials, concurrency=args.concurrency,
                                     name=f"svdprune-demo-{task}", working_directory=args.out / "nni",
                                     code_directory=Path.cwd(), max_trial_duration="15m", seed=args.seed)
    threads = str(max(1, (os.cpu_count() or 1) // args.concurrency))  # trials share the cores, not oversubscribe
    outcome = run_experiment(config, timeout=args.timeout, env={"OMP_NUM_THREADS": threads},
                             on_trial=lambda e: print(format_trial_event(e), file=log, flush=True))
    print(f"  experiment {outcome.experiment_id} {outcome.status}{' (timed out)' if outcome.timed_out else ''} "
          f"in {outcome.wall_s:.0f}s; NNI manager stopped", file=log, flush=True)
    document = write_search_outputs(outcome, args.out / task, task, wandb=not args.no_wandb,
                                    config={"demo": True, "trial_command": command}, log=log, model=args.model)
    front = pareto_front(outcome.results.trials)
    print(f"\n  Pareto front, {task} ({len(outcome.results.trials)} trials, {outcome.results.n_failed} failed):",
          file=log)
    print("  " + format_table(front_rows(front)).replace("\n", "\n  "), file=log)
    print(f"  wrote {document['files']['json']} and {document['files']['png']}\n", file=log, flush=True)
    return {"outcome": outcome, "document": document}


def _choose_profile(searches: dict[str, dict[str, Any]], path: Path, model: str
                    ) -> tuple[Path, list[dict[str, Any]]]:
    from adaptive_svdprune.profiles import Profile, TaskProfile, save_profile
    from adaptive_svdprune.tradeoffs import select_for_constraint

    entries: dict[str, TaskProfile] = {}
    for task, search in searches.items():
        outcome = search["outcome"]
        trials = outcome.results.trials
        if not trials:
            continue
        cap = statistics.median(t.tflops for t in trials)
        best = select_for_constraint(trials, max_tflops=cap)
        entry = TaskProfile.from_trial(best, constraint=f"max_tflops<={cap:.4g}", experiment=outcome.experiment_id)
        entries[task] = entry  # the exact value the trial ran with: the profile's accuracy was measured with it
    if not entries:
        raise RuntimeError("no task has a successful trial: nothing to put in a profile")
    profile = Profile(name="demo", model=model, deployment="demo: best accuracy within each search's median TFLOPs",
                      experiments=[s["outcome"].experiment_id for s in searches.values()], tasks=entries)
    written = save_profile(profile, path, merge=False)
    rows = [{"task": task, "trial": e.trial_id, "epsilon": e.variance_threshold,
             "budget": "adaptive" if e.budget is None else e.budget, "center": bool(e.center),
             "accuracy": e.accuracy, "tflops": e.tflops, "kept tokens": e.mean_kept_tokens,
             "constraint": e.constraint} for task, e in entries.items()]
    return written, rows


def _generate_with_profile(profile: Path, task: str, data_root: Path, model: str, overlay: Path) -> dict[str, Any]:
    from adaptive_svdprune.commands import generate
    from adaptive_svdprune.commands._output import json_output
    from adaptive_svdprune.data import load_task

    sample = load_task(task, data_root / task, limit=1).samples[0]
    argv = ["generate", "--model", model, "--profile", str(profile), "--task", task, "--image",
            str(sample.image_path), "--question", sample.question, "--max-new-tokens", "8",
            "--save-overlay", str(overlay), "--json"]
    parser = argparse.ArgumentParser(prog="adaptive-svdprune generate")
    generate.add_arguments(parser)
    captured = io.StringIO()
    with json_output(captured):
        code = generate.run(parser.parse_args(argv[1:]))
    if code != 0:
        raise RuntimeError(f"generate with the profile failed (exit {code}): adaptive-svdprune {shlex.join(argv)}")
    return {"command": f"adaptive-svdprune {shlex.join(argv[:-1])}", "expected": sample.answers[0],
            **json.loads(captured.getvalue())}


def _prepare_data(args: argparse.Namespace, tasks: list[str], log: Any) -> Path:
    """The data root: ``--data-root`` as given, else fresh shapes test splits under ``OUT/data``."""
    from adaptive_svdprune.shapes import write_split

    if args.data_root is not None:
        return Path(args.data_root)
    root = args.out / "data"
    for task in tasks:
        written = write_split(root / task, task, "test", n=args.questions, seed=args.data_seed)
        print(f"  {task}: {written.n_questions} questions on {written.n_images} images in {root / task}",
              file=log, flush=True)
    return root


def _compare(args: argparse.Namespace, tasks: list[str], data_root: Path, log: Any) -> dict[str, Any]:
    from adaptive_svdprune.commands._output import format_table
    from adaptive_svdprune.commands.compare import (
        COMPARE_COLUMNS,
        compare_methods,
        comparison_table_rows,
        csv_items,
        write_outputs,
    )
    from adaptive_svdprune.models.families import load_model

    methods = csv_items(args.compare_methods, "--compare-methods", str)
    budgets = csv_items(args.compare_budgets, "--compare-budgets", int)
    loaded = load_model(args.model)
    results = {}
    for task in tasks:
        out = args.out / "compare" / task
        print(f"  {task}: {len(methods)} methods x {len(budgets)} budgets ...", file=log, flush=True)
        result = compare_methods(args.model, task, data_root / task, methods, budgets, out, loaded=loaded,
                                 ocr=task == "textvqa" and not args.generated_data,
                                 log=lambda line: print(line, file=log, flush=True))
        write_outputs(result, out)
        print("  " + format_table(comparison_table_rows(result), COMPARE_COLUMNS).replace("\n", "\n  "), file=log)
        print(f"  wrote {result['files']['csv']} and {result['files']['png']}\n", file=log, flush=True)
        results[task] = result
    return results


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every task produced a successful trial and generate used the profile."""
    from adaptive_svdprune.commands._checks import check_writable_dir, check_writable_file
    from adaptive_svdprune.commands.compare import csv_items
    from adaptive_svdprune.models.names import resolve_model_path

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise ValueError(f"--tasks names no task: {args.tasks!r}")
    unknown = [t for t in tasks if t not in DEMO_TASKS]
    if unknown and args.data_root is None:
        raise ValueError(f"the shapes world has no task {unknown}; known: {list(DEMO_TASKS)} (or give --data-root)")
    for name in ("trials", "concurrency", "questions"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.data_root is not None:
        missing = [t for t in tasks if not (args.data_root / t).is_dir()]
        if missing:
            raise FileNotFoundError(f"no data for {missing} under --data-root {args.data_root}")
    csv_items(args.compare_methods, "--compare-methods", str)
    csv_items(args.compare_budgets, "--compare-budgets", int)
    check_writable_dir(args.out, "--out")
    check_writable_file(args.profile, "--profile")
    args.generated_data = args.data_root is None
    log = sys.stderr if args.json else sys.stdout
    start = time.monotonic()
    steps = len(tasks) + 4 + (0 if args.no_compare else 1)
    print(f"adaptive-svdprune demo: {', '.join(tasks)} on the {args.model!r} model, {args.trials} trials per task "
          f"(concurrency {args.concurrency}); outputs in {args.out}/", file=log)
    print(f"[1/{steps}] model: {resolve_model_path(args.model)}", file=log, flush=True)
    print(f"[2/{steps}] test data ...", file=log, flush=True)
    data_root = _prepare_data(args, tasks, log)
    args.data_root = data_root
    searches: dict[str, dict[str, Any]] = {}
    for i, task in enumerate(tasks, start=3):
        print(f"[{i}/{steps}] {task}: NNI experiment (local training service, TPE) ...", file=log, flush=True)
        searches[task] = _search_task(task, args, log)
    step = len(tasks) + 3
    print(f"[{step}/{steps}] deployment profile ...", file=log, flush=True)
    profile, rows = _choose_profile(searches, args.profile, args.model)
    print(format_table(rows), file=log)
    print(f"wrote {profile}\n", file=log)
    task = rows[0]["task"]
    print(f"[{step + 1}/{steps}] generate with the profile ({task}) ...", file=log, flush=True)
    generated = _generate_with_profile(profile, task, data_root, args.model, args.out / "overlay.png")
    print(f"  $ {generated['command']}", file=log)
    print(f"  question: {generated['question']}\n  answer: {generated['answer']!r} (expected "
          f"{generated['expected']!r})\n  kept tokens: {generated['kept_tokens']} / {generated['image_tokens']} "
          f"with {json.dumps({k: generated['config'][k] for k in ('variance_threshold', 'budget', 'center')})}; "
          f"overlay {args.out / 'overlay.png'}\n", file=log)
    comparisons: dict[str, Any] = {}
    if not args.no_compare:
        print(f"[{steps}/{steps}] method comparison ...", file=log, flush=True)
        comparisons = _compare(args, tasks, data_root, log)
    elapsed = time.monotonic() - start
    summary = {
        "model": args.model,
        "data": str(data_root),
        "tasks": {t: {k: v for k, v in s["document"].items() if k in ("experiment", "status", "n_trials", "failed",
                                                                        "front", "files", "wall_s")}
                  for t, s in searches.items()},
        "profile": str(profile),
        "profile_entries": rows,
        "generate": generated,
        "comparison": {t: {"files": c["files"], "rows": c["rows"], "unpruned": c["unpruned"]}
                       for t, c in comparisons.items()},
        "wall_s": elapsed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo.json").write_text(json.dumps(summary, indent=2, default=str, allow_nan=False) + "\n")
    print(f"\ndemo done in {elapsed:.0f}s; summary in {args.out / 'demo.json'}", file=log)
    if args.json:
        print_json(summary)
    ok = all(s["outcome"].results.trials for s in searches.values())
    return 0 if ok else 1
