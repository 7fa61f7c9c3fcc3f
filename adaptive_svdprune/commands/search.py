"""``adaptive-svdprune search``: run an NNI threshold search from an experiment YAML and report its Pareto front.

Starts the experiment of ``--config`` (the ``nnictl create --config`` format, e.g. ``search/demo.yml``) on a free
port with NNI's working directory under ``runs/nni``, prints each trial as it ends, reads every trial before
stopping the manager (it is stopped whatever happens), then writes ``results.json`` (all successful trials),
``pareto.json`` (front, trials, failures) and ``pareto.png`` under ``--out`` and logs an offline W&B run.
Failed trials are counted and listed, never fatal; the exit code is 1 only when no trial succeeded.

``--config`` is a path or the name of a packaged experiment (``demo``, ``gqa``, ``textvqa``; see
:mod:`adaptive_svdprune.resources`). Output folders, the port, the search space and the trial command's model
and feature cache are checked before the manager starts. The experiment id is printed as soon as the manager
runs; Ctrl-C, SIGTERM and SIGHUP stop the manager, its dispatcher and the running trials, write the trials
finished so far and exit 130, 143 or 129.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from adaptive_svdprune.commands._output import format_table, print_json

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_svdprune.search.experiment import ExperimentOutcome, TrialEvent

__all__ = ["HELP", "add_arguments", "format_trial_event", "run", "task_of_command", "write_search_outputs"]

HELP = "Run an NNI search (experiment YAML), wait for it, print and save the Pareto front, stop the manager."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adaptive-svdprune search``."""
    parser.add_argument("--config", required=True,
                        help="NNI experiment YAML (search/demo.yml) or a packaged name (demo, gqa, textvqa)")
    parser.add_argument("--trials", type=int, default=None, help="maxTrialNumber (default: the YAML's)")
    parser.add_argument("--concurrency", type=int, default=None, help="trialConcurrency (default: the YAML's)")
    parser.add_argument("--port", type=int, default=None, help="NNI manager port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="stop waiting after S seconds and report the trials finished so far")
    parser.add_argument("--trial-args", default=None, metavar="ARGS",
                        help="extra trial arguments appended to trialCommand, e.g. '--limit 8'")
    parser.add_argument("--nni-dir", type=Path, default=Path("runs/nni"),
                        help="NNI working directory (default: %(default)s, not ~/nni-experiments)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: runs/search/<experiment id>)")
    parser.add_argument("--task", default=None, help="task name for titles (default: the trial command's --task)")
    parser.add_argument("--no-wandb", action="store_true", help="do not log a W&B run")
    parser.add_argument("--wandb-project", default="adaptive-svdprune", help="W&B project (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print pareto.json (progress goes to stderr)")


def task_of_command(command: str | None) -> str | None:
    """The ``--task`` value of a trial command, if any.

    Example:
        >>> task_of_command("python -m adaptive_svdprune.search.trial --task gqa --data d")
        'gqa'
    """
    words = shlex.split(command or "")
    for i, word in enumerate(words):
        if word == "--task" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--task="):
            return word.split("=", 1)[1]
    return None


def _command_option(command: str | None, flag: str) -> str | None:
    words = shlex.split(command or "")
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def preflight(config: Any, out: Path | None, nni_dir: Path, port: int | None) -> None:
    """Check, before any manager starts, what would otherwise fail after the search: folders, port, model.

    The trial command's ``--model`` (a hub id must be cached or reachable) and ``--feature-cache`` (a writable
    folder, relative to the trial code directory) are checked when the trials run on this machine.
    """
    from adaptive_svdprune.commands._checks import check_model_source, check_port_free, check_writable_dir
    from adaptive_svdprune.search.space import check_search_space

    check_writable_dir(out if out is not None else Path("runs") / "search", "--out")
    check_writable_dir(nni_dir, "--nni-dir")
    check_port_free(port, "--port")
    canonical = config.canonical_copy()
    check_search_space(canonical.search_space, canonical.tuner.name if canonical.tuner is not None else None)
    if canonical.training_service.platform != "local":
        return
    code_dir = Path(str(canonical.trial_code_directory))
    model = _command_option(canonical.trial_command, "--model")
    if model is not None:
        local = code_dir / model
        check_model_source(str(local) if local.exists() else model, "trialCommand --model")
    _check_anyres_split(canonical, code_dir, model or "tiny")
    cache = _command_option(canonical.trial_command, "--feature-cache")
    if cache is not None:
        check_writable_dir(code_dir / cache, "trialCommand --feature-cache")


def _check_anyres_split(canonical: Any, code_dir: Path, model: str) -> None:
    """``per_view`` (trial command or search space) needs an anyres model: refused before any trial runs."""
    from adaptive_svdprune.models.families import check_split, model_class_name

    space = canonical.search_space or {}
    choices = space.get("anyres_split", {}).get("_value", []) if isinstance(space, dict) else []
    fixed = _command_option(canonical.trial_command, "--anyres-split") or "global"
    asked = [s for s in dict.fromkeys([fixed, *choices]) if s != "global"]
    if not asked:
        return
    local = code_dir / model
    try:
        model_class = model_class_name(str(local) if local.exists() else model)
    except OSError:  # a config the trials will fetch themselves: they check it
        return
    for split in asked:
        check_split(split, model_class, "anyres_split (search space or trialCommand --anyres-split)")


def format_trial_event(event: TrialEvent) -> str:
    """One progress line for a trial that ended.

    Example:
        >>> from adaptive_svdprune.search.experiment import TrialEvent
        >>> e = TrialEvent("aB3", "SUCCEEDED", {"variance_threshold": 0.8, "budget": 32},
        ...                {"accuracy": 0.5, "tflops": 1.25, "mean_kept_tokens": 32.0}, None, 1, 4)
        >>> format_trial_event(e)
        '  trial 1/4 aB3 SUCCEEDED  eps=0.8 budget=32  accuracy=0.5 tflops=1.25 kept=32'
    """
    params = " ".join(f"{'eps' if k == 'variance_threshold' else k}={v:g}" if isinstance(v, float) else
                      f"{'eps' if k == 'variance_threshold' else k}={v}" for k, v in (event.parameters or {}).items())
    line = f"  trial {event.ended}/{event.total} {event.trial_id} {event.status}  {params}"
    if event.metric:
        m = event.metric
        line += f"  accuracy={m.get('accuracy', float('nan')):.4g} tflops={m.get('tflops', float('nan')):.4g}"
        line += f" kept={m.get('mean_kept_tokens', float('nan')):.4g}"
    elif event.status != "SUCCEEDED" and event.stderr:
        line += f"  (logs: {Path(event.stderr).parent})"
    return line


def write_search_outputs(
    outcome: ExperimentOutcome,
    out: Path,
    task: str | None,
    wandb: bool = True,
    wandb_project: str = "adaptive-svdprune",
    config: dict[str, Any] | None = None,
    log: TextIO | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Write ``results.json``, ``pareto.json``, ``pareto.png`` (in that order) and log W&B; return the document.

    The returned document is ``pareto.json``'s content plus ``files`` (the paths written; ``wandb`` is the run
    folder or ``None``). A W&B failure is reported on ``log`` and never loses the files already written. The
    W&B run is a ``search`` job grouped by the experiment id, tagged with task, model (``model``) and method.
    """
    import json

    from adaptive_svdprune.tradeoffs.pareto import pareto_front
    from adaptive_svdprune.tradeoffs.plots import plot_pareto
    from adaptive_svdprune.tradeoffs.results import save_results

    out.mkdir(parents=True, exist_ok=True)
    results = outcome.results
    front = pareto_front(results.trials)
    document = {
        "task": task,
        "experiment": outcome.experiment_id,
        "status": outcome.status,
        "timed_out": outcome.timed_out,
        "wall_s": outcome.wall_s,
        "nni_dir": str(outcome.directory),
        **results.to_dict(),
        "front": [t.to_dict() for t in front],
    }
    results_path = save_results(results, out / "results.json")
    json_path = out / "pareto.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    png_path = plot_pareto(results, front, out / "pareto.png", task=task)
    wandb_dir = None
    if wandb:
        from adaptive_svdprune.tradeoffs.wandb_log import log_pareto_to_wandb

        try:
            wandb_dir = log_pareto_to_wandb(results, front, project=wandb_project,
                                            name=f"search-{task or 'task'}-{outcome.experiment_id}", dir=out,
                                            task=task, config={"experiment": outcome.experiment_id, **(config or {})},
                                            group=outcome.experiment_id, job_type="search", model=model)
        except Exception as err:  # the results are on disk already: report W&B trouble, do not fail
            print(f"warning: W&B logging failed: {err}", file=log or sys.stderr)
    files = {"results": str(results_path), "json": str(json_path), "png": str(png_path), "wandb": wandb_dir}
    return {**document, "files": files}


def run(args: argparse.Namespace) -> int:
    """Launch the experiment, wait, stop it, write and print the results; 1 when no trial succeeded."""
    from adaptive_svdprune.commands.pareto import front_rows
    from adaptive_svdprune.search.experiment import load_experiment_config, run_experiment
    from adaptive_svdprune.tradeoffs.pareto import pareto_front

    log = sys.stderr if args.json else sys.stdout
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
    config = load_experiment_config(args.config, trials=args.trials, concurrency=args.concurrency,
                                    working_directory=args.nni_dir, trial_args=args.trial_args)
    preflight(config, args.out, args.nni_dir, args.port)
    task = args.task or task_of_command(config.trial_command)
    run_config = {"config_file": str(args.config), "trial_command": config.trial_command,
                  "model": _command_option(config.trial_command, "--model")}
    print(f"search: starting NNI experiment {config.experiment_name!r} ({config.max_trial_number} trials, "
          f"concurrency {config.trial_concurrency}, working directory {args.nni_dir})", file=log, flush=True)

    def started(experiment_id: str, port: int) -> None:
        print(f"search: experiment {experiment_id} running (web UI http://localhost:{port})", file=log, flush=True)

    try:
        outcome = run_experiment(config, port=args.port, timeout=args.timeout, on_start=started,
                                 on_trial=lambda e: print(format_trial_event(e), file=log, flush=True))
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM, SIGHUP: the manager is stopped; keep what finished
        interrupted = getattr(err, "outcome", None)
        if interrupted is not None:
            out = args.out if args.out is not None else Path("runs") / "search" / interrupted.experiment_id
            print(f"search: experiment {interrupted.experiment_id} interrupted ({err or 'Ctrl-C'}) after "
                  f"{interrupted.wall_s:.0f}s; NNI manager and trials stopped; "
                  f"{len(interrupted.results.trials)} trials finished", file=sys.stderr, flush=True)
            document = write_search_outputs(interrupted, out, task, wandb=False, config=run_config, log=sys.stderr)
            print(f"search: wrote {document['files']['results']} and {document['files']['json']}", file=sys.stderr,
                  flush=True)
        raise
    stopped = f"experiment {outcome.experiment_id} {outcome.status}"
    print(f"search: {stopped}{' (timed out)' if outcome.timed_out else ''} after {outcome.wall_s:.0f}s; "
          "NNI manager stopped", file=log, flush=True)
    for error in outcome.errors:
        print(f"search: NNI reported: {error}", file=log)
    out = args.out if args.out is not None else Path("runs") / "search" / outcome.experiment_id
    document = write_search_outputs(outcome, out, task, wandb=not args.no_wandb, wandb_project=args.wandb_project,
                                    config=run_config, log=log, model=run_config["model"])
    results = outcome.results
    if args.json:
        print_json(document)
    else:
        front = pareto_front(results.trials)
        print(f"\nPareto front ({task or 'task'}):")
        print(format_table(front_rows(front)))
        pending = f", {len(results.pending)} unfinished" if results.pending else ""
        print(f"\n{len(results.trials)} trials succeeded, {results.n_failed} failed{pending}")
        files = document["files"]
        print(f"wrote {files['results']}, {files['json']} and {files['png']}"
              + (f"; W&B run in {files['wandb']}" if files["wandb"] else ""))
    if not results.trials:
        print("adaptive-svdprune search: error: no successful trials", file=sys.stderr)
        return 1
    if outcome.status == "STALLED":  # the finished trials are written above; the search itself did not complete
        print(f"adaptive-svdprune search: error: {outcome.errors[-1]}", file=sys.stderr)
        return 1
    return 0
