"""``adaptive-svdprune profile``: pick the search trial that meets a deployment constraint, save it as a profile.

``--max-tflops X`` keeps the most accurate trial within the FLOPs cap; ``--min-accuracy Y`` the cheapest trial
that reaches the accuracy floor. The choice is written into ``--out`` (default ``profiles/NAME.yaml``) under
``--task``; other tasks already in that file are kept. Load it with ``load_profile(path).config_for(task)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adaptive_svdprune.commands._output import format_table, print_json
from adaptive_svdprune.commands.pareto import add_source_arguments, read_source

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Choose the SVD-Prune setting for a task under a FLOPs cap or accuracy floor; write a deployment profile."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adaptive-svdprune profile``."""
    add_source_arguments(parser)
    parser.add_argument("--task", required=True, help="task the search ran on (the profile entry name)")
    constraint = parser.add_mutually_exclusive_group(required=True)
    constraint.add_argument(
        "--max-tflops", type=float, metavar="X", help="FLOPs cap: best accuracy with TFLOPs per sample <= X"
    )
    constraint.add_argument(
        "--min-accuracy", type=float, metavar="Y", help="accuracy floor: fewest FLOPs with accuracy >= Y"
    )
    parser.add_argument("--name", required=True, help="profile name (e.g. the deployment target)")
    parser.add_argument("--model", default=None, help="model id or path the search ran on")
    parser.add_argument("--deployment", default=None, help="free-form note on the deployment target")
    parser.add_argument(
        "--out", type=Path, default=None, help="profile YAML (default: profiles/NAME.yaml); other tasks in it are kept"
    )
    parser.add_argument("--no-wandb", action="store_true", help="do not log the profile to W&B")
    parser.add_argument("--wandb-project", default="adaptive-svdprune", help="W&B project (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the chosen entry as JSON")


def run(args: argparse.Namespace) -> int:
    """Select the trial, merge it into the profile file and print it."""
    from dataclasses import asdict

    from adaptive_svdprune.commands._checks import check_writable_file
    from adaptive_svdprune.profiles import Profile, TaskProfile, save_profile
    from adaptive_svdprune.tradeoffs import select_for_constraint

    out = check_writable_file(args.out if args.out is not None else Path("profiles") / f"{args.name}.yaml", "--out")
    results = read_source(args)
    trial = select_for_constraint(results, max_tflops=args.max_tflops, min_accuracy=args.min_accuracy)
    if args.max_tflops is not None:
        constraint = f"max_tflops<={args.max_tflops:g}"
    else:
        constraint = f"min_accuracy>={args.min_accuracy:g}"
    entry = TaskProfile.from_trial(trial, constraint=constraint, experiment=args.experiment)
    profile = Profile(
        name=args.name,
        model=args.model,
        deployment=args.deployment,
        experiments=[args.experiment] if args.experiment else [],
        tasks={args.task: entry},
    )
    path = save_profile(profile, out)
    wandb_dir = None
    if not args.no_wandb:
        from adaptive_svdprune.tradeoffs.wandb_log import log_profile_to_wandb

        try:  # a profile run grouped by the profile name, with the YAML as a "profile" artifact
            wandb_dir = log_profile_to_wandb(path, args.name, args.task, asdict(entry), project=args.wandb_project,
                                             model=args.model, dir=Path("runs") / "profile",
                                             config={"experiment": args.experiment, "constraint": constraint})
        except Exception as err:  # the profile is on disk already: report W&B trouble, do not fail
            print(f"adaptive-svdprune profile: warning: W&B logging failed: {err}", file=sys.stderr)
    if args.json:
        print_json(
            {
                "profile": str(path),
                "name": args.name,
                "task": args.task,
                **asdict(entry),
                "n_trials": len(results.trials),
                "failed": results.n_failed,
                "wandb": wandb_dir,
            }
        )
        return 0
    row = {
        "task": args.task,
        "trial": entry.trial_id,
        "epsilon": entry.variance_threshold,
        "budget": "adaptive" if entry.budget is None else entry.budget,
        "accuracy": entry.accuracy,
        "tflops": entry.tflops,
        "kept tokens": entry.mean_kept_tokens,
        "constraint": constraint,
    }
    if entry.anyres_split is not None:  # LLaVA-NeXT/OneVision searches that tuned the view split
        row["anyres split"] = entry.anyres_split
    print(format_table([row]))
    print(f"\nchosen from {len(results.trials)} trials ({results.n_failed} failed); wrote {path}")
    return 0
