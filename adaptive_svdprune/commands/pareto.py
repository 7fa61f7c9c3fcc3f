"""``adaptive-svdprune pareto``: the accuracy/FLOPs Pareto front of a threshold search.

Reads every trial of an NNI experiment (its database, so a stopped experiment works) or of a results JSON,
skips and counts failed trials, then writes ``DIR/pareto.json`` (front, all trials, failed count) first,
``DIR/pareto.png`` next and finally logs an offline W&B run, so a plotting or W&B problem never loses results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptive_svdprune.commands._output import format_table, print_json

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_svdprune.tradeoffs.results import ResultSet, TrialResult

__all__ = ["FRONT_COLUMNS", "HELP", "add_arguments", "add_source_arguments", "front_rows", "read_source", "run"]

HELP = "Pareto front (accuracy vs TFLOPs) of a search: table, pareto.json, pareto.png and a W&B run."
FRONT_COLUMNS: tuple[str, ...] = ("trial", "epsilon", "budget", "accuracy", "tflops", "kept tokens")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--experiment ID | --results FILE`` plus where to find the experiment (shared with ``profile``)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", metavar="ID", help="NNI experiment id (running or stopped)")
    source.add_argument(
        "--results", metavar="FILE", type=Path, help="results JSON (ours, nnictl export or pareto.json)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="REST port of the running experiment (default: read its database)"
    )
    parser.add_argument(
        "--nni-dir",
        type=Path,
        default=None,
        help="NNI working directory holding <ID>/ (default: as nnictl recorded it)",
    )


def read_source(args: argparse.Namespace) -> ResultSet:
    """The trials named by :func:`add_source_arguments`."""
    from adaptive_svdprune.search.nni_results import read_experiment
    from adaptive_svdprune.tradeoffs.results import load_results

    if args.experiment is not None:
        return read_experiment(args.experiment, port=args.port, root=args.nni_dir)
    return load_results(args.results)


def front_rows(front: list[TrialResult]) -> list[dict[str, Any]]:
    """Rows of the printed front table: :data:`FRONT_COLUMNS`, plus ``center`` after ``budget`` when the search
    tuned it (a front point is a setting; one that differs only in centring must say so)."""
    centred = any("center" in t.parameters for t in front)
    rows = []
    for t in front:
        row: dict[str, Any] = {"trial": t.trial_id,
                               "epsilon": t.variance_threshold if t.variance_threshold is not None else "",
                               "budget": "adaptive" if t.budget is None else t.budget}
        if centred:
            row["center"] = bool(t.parameters.get("center", False))
        row.update({"accuracy": t.accuracy, "tflops": t.tflops, "kept tokens": t.mean_kept_tokens})
        rows.append(row)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adaptive-svdprune pareto``."""
    add_source_arguments(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: runs/pareto/<experiment or results name>)"
    )
    parser.add_argument("--task", default=None, help="task name, for titles and the W&B run")
    parser.add_argument("--model", default=None, help="model the search ran, for the W&B run's tags and config")
    parser.add_argument("--no-wandb", action="store_true", help="do not log a W&B run")
    parser.add_argument("--wandb-project", default="adaptive-svdprune", help="W&B project (default: %(default)s)")
    parser.add_argument(
        "--wandb-mode", choices=("offline", "online"), default=None,
        help="W&B mode (default: WANDB_MODE when set, else offline)",
    )
    parser.add_argument("--json", action="store_true", help="print pareto.json instead of a table")


def run(args: argparse.Namespace) -> int:
    """Compute the front, write pareto.json and pareto.png, log W&B; 1 when there is no successful trial."""
    import json

    from adaptive_svdprune.commands._checks import check_writable_dir
    from adaptive_svdprune.tradeoffs.pareto import pareto_front
    from adaptive_svdprune.tradeoffs.plots import plot_pareto

    name = args.experiment if args.experiment is not None else Path(args.results).stem
    out = check_writable_dir(args.out if args.out is not None else Path("runs") / "pareto" / name, "--out")
    results = read_source(args)
    out.mkdir(parents=True, exist_ok=True)
    front = pareto_front(results.trials)
    document = {
        "task": args.task,
        "experiment": args.experiment,
        **results.to_dict(),
        "front": [t.to_dict() for t in front],
    }
    json_path = out / "pareto.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    png_path = plot_pareto(results, front, out / "pareto.png", task=args.task)
    wandb_dir = None
    if not args.no_wandb:
        from adaptive_svdprune.tradeoffs.wandb_log import log_pareto_to_wandb

        try:
            wandb_dir = log_pareto_to_wandb(
                results,
                front,
                project=args.wandb_project,
                name=f"pareto-{args.task or name}",
                mode=args.wandb_mode,
                dir=out,
                task=args.task,
                config={"experiment": args.experiment, "source": results.source},
                group=name,
                job_type="pareto",
                model=args.model,
            )
        except Exception as err:  # results are already on disk: report W&B trouble, do not fail
            print(f"adaptive-svdprune pareto: warning: W&B logging failed: {err}", file=sys.stderr)
    if args.json:
        print_json({**document, "files": {"json": str(json_path), "png": str(png_path), "wandb": wandb_dir}})
    else:
        print(format_table(front_rows(front)))
        pending = f", {len(results.pending)} still running" if results.pending else ""
        print(
            f"\n{len(results.trials)} trials, {results.n_failed} failed{pending}; "
            f"Pareto front of {len(front)} from {results.source}"
        )
        print(f"wrote {json_path} and {png_path}" + (f"; W&B run in {wandb_dir}" if wandb_dir else ""))
    if not results.trials:
        print("adaptive-svdprune pareto: error: no successful trials", file=sys.stderr)
        return 1
    return 0
