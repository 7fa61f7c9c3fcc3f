"""One NNI trial: evaluate one SVD-Prune setting on a task and report the objective with the raw numbers.

Run by NNI as ``python -m adaptive_svdprune.search.trial --task gqa --data DIR --model ID ...`` (the experiment
YAMLs in ``search/``). Under NNI the parameters come from ``nni.get_next_parameter()`` (``--params`` then
gives fixed values for keys the space does not search); outside NNI ``--params '{"variance_threshold": 0.9,
"budget": 64}'`` is required. The trial reports an intermediate result per evaluated chunk (one chunk unless
``--report-every N``) and the final dict ``{"default": objective, "accuracy", "tflops", "mean_kept_tokens",
...}`` (see :mod:`adaptive_svdprune.tradeoffs.objective`) plus the parameters it ran and their ``parameter_id``
(:func:`with_parameters`): NNI 3.0 can pair concurrent trials with the wrong parameters in its exports, and a
result that names its own parameters is read correctly from any route. The unpruned TFLOPs the evaluation
reports are the normaliser of the scalarised objective. Any error prints its traceback and exits with status 1,
so NNI marks the trial FAILED and the experiment goes on with the next one.

The core, :func:`run_trial`, is a plain function of the parameters and :class:`TrialSettings`; the evaluation
is injectable, so it is tested without NNI or a model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptive_svdprune.resources import resolve_data
from adaptive_svdprune.search.space import ANYRES_SPLITS, TRIAL_PARAMETERS, parse_anyres_split, parse_trial_parameters
from adaptive_svdprune.tradeoffs.objective import OBJECTIVE_MODES, ObjectiveConfig, ObjectiveMode

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_svdprune.evaluation import EvalConfig

__all__ = [
    "Evaluate",
    "TrialSettings",
    "build_parser",
    "eval_config",
    "main",
    "run_trial",
    "trial_metrics",
    "with_parameters",
]

#: ``run_evaluation``'s signature: config in, metrics dict out.
Evaluate = Callable[["EvalConfig"], Mapping[str, Any]]
#: Metrics passed on to NNI next to the objective when the evaluation reports them (finite numbers only).
EXTRA_METRICS: tuple[str, ...] = (
    "fidelity",
    "min_kept_tokens",
    "max_kept_tokens",
    "tflops_unpruned_per_sample",
    "samples",
    "skipped",
    "latency_s_per_sample",
    "peak_memory_mb",
)


@dataclass(frozen=True)
class TrialSettings:
    """Everything about a trial that the tuner does not choose.

    Args:
        task: task name (``gqa``, ``textvqa``, ``jsonl``).
        data: the task's data folder.
        model: hub id or local checkpoint; ``"tiny"`` for the offline tiny LLaVA.
        dtype: weight dtype (``"float16"``, ``"bfloat16"``, ``"float32"``; ``None``: as saved).
        batch_size: evaluation batch size.
        limit: evaluate the first ``limit`` questions (``None``: the whole split).
        max_new_tokens: answer length cap.
        out: evaluation output folder (default: ``$NNI_OUTPUT_DIR/eval`` under NNI, else
            ``runs/trials/<task>-<setting>-<hash>``, so an identical rerun resumes).
        feature_cache: folder of cached vision features shared by all trials (``None``: no cache).
        objective: ``"scalarized"`` or ``"constrained"``.
        lam: FLOPs weight of the scalarised objective.
        max_tflops: FLOPs cap of the constrained objective (TFLOPs per sample).
        penalty: slope below the cap's infeasible side (constrained).
        fidelity: also score agreement with the unpruned model's answers.
        ocr: TextVQA/JSONL: add OCR tokens to the prompt.
        skip_bad: skip unreadable images instead of failing.
        accelerator: Lightning accelerator.
        devices: Lightning device count.
        report_every: evaluate in chunks of this many questions with an intermediate result after each
            (the evaluation resumes from its predictions, so chunks cost no repeated work).
        wandb: log the evaluation to W&B.
        anyres_split: LLaVA-NeXT/OneVision selection (``global`` or ``per_view``) when the search space does not
            choose it (an ``anyres_split`` parameter wins).
    """

    task: str
    data: str
    model: str = "tiny"
    dtype: str | None = None
    batch_size: int = 4
    limit: int | None = None
    max_new_tokens: int = 8
    out: str | None = None
    feature_cache: str | None = None
    objective: ObjectiveMode = "scalarized"
    lam: float = 0.5
    max_tflops: float | None = None
    penalty: float = 1.0
    fidelity: bool = False
    ocr: bool = False
    skip_bad: bool = False
    accelerator: str = "auto"
    devices: int = 1
    report_every: int | None = None
    wandb: bool = False
    anyres_split: str = "global"

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_new_tokens", "devices"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("limit", "report_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.anyres_split not in ANYRES_SPLITS:
            raise ValueError(f"anyres_split must be one of {list(ANYRES_SPLITS)}, got {self.anyres_split!r}")
        if self.objective not in OBJECTIVE_MODES:
            raise ValueError(f"objective must be one of {OBJECTIVE_MODES}, got {self.objective!r}")
        # fail before any evaluation, not after: the placeholder reference is replaced by the measured one
        self.objective_config(reference_tflops=1.0)

    def objective_config(self, reference_tflops: float) -> ObjectiveConfig:
        """The objective, normalised by the unpruned TFLOPs per sample ``reference_tflops``."""
        return ObjectiveConfig(
            mode=self.objective,
            lam=self.lam,
            max_tflops=self.max_tflops,
            reference_tflops=reference_tflops,
            penalty=self.penalty,
        )


def _default_out(params: Mapping[str, Any], settings: TrialSettings, split: str = "global") -> Path:
    if nni_output := os.environ.get("NNI_OUTPUT_DIR"):
        return Path(nni_output) / "eval"
    budget = "adaptive" if params["budget"] is None else f"b{params['budget']}"
    fixed = asdict(settings)
    fixed.pop("anyres_split")
    # NOTE: the split enters the folder's hash only when it is not the default, so global runs keep their folders
    key = json.dumps({"params": {**params, **({"anyres_split": split} if split != "global" else {})},
                      "settings": fixed}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return Path("runs") / "trials" / f"{settings.task}-eps{params['variance_threshold']:g}-{budget}-{digest}"


def eval_config(params: Mapping[str, Any], settings: TrialSettings, limit: int | None = None) -> EvalConfig:
    """The evaluation config of one trial: the parsed parameters plus the settings.

    Args:
        params: the tuner's parameters (see :func:`~adaptive_svdprune.search.space.parse_trial_parameters`).
        settings: the fixed trial settings.
        limit: question limit of this evaluation (default ``settings.limit``).
    """
    from adaptive_svdprune.evaluation import EvalConfig

    parsed = parse_trial_parameters(params)
    split = parse_anyres_split(params, settings.anyres_split)
    out = Path(settings.out) if settings.out is not None else _default_out(parsed, settings, split)
    return EvalConfig(
        model=settings.model,
        task=settings.task,
        data=str(resolve_data(settings.data)),  # the bundled fixtures when run from outside a checkout
        method="svd",
        variance_threshold=parsed["variance_threshold"],
        budget=parsed["budget"],
        min_tokens=parsed["min_tokens"],
        max_tokens=parsed["max_tokens"],
        anyres_split=split,
        center=parsed.get("center", False),
        batch_size=settings.batch_size,
        limit=settings.limit if limit is None else limit,
        max_new_tokens=settings.max_new_tokens,
        out=str(out),
        wandb=settings.wandb,
        fidelity=settings.fidelity,
        feature_cache=settings.feature_cache,
        ocr=settings.ocr,
        skip_bad=settings.skip_bad,
        accelerator=settings.accelerator,
        devices=settings.devices,
        dtype=settings.dtype,
        progress_bar=False,  # trial logs are files: no progress bars in them
    )


def trial_metrics(metrics: Mapping[str, Any], settings: TrialSettings) -> dict[str, float]:
    """The dict reported to NNI for evaluation ``metrics``: ``default`` (the objective) and the raw numbers.

    Example:
        >>> m = {"accuracy": 0.5, "tflops_per_sample": 1.0, "tflops_unpruned_per_sample": 4.0,
        ...      "mean_kept_tokens": 64.0, "samples": 8, "latency_s_per_sample": float("nan")}
        >>> reported = trial_metrics(m, TrialSettings("gqa", "data/gqa", lam=0.4))
        >>> reported["default"], reported["tflops"], reported["samples"], "latency_s_per_sample" in reported
        (0.4, 1.0, 8.0, False)
    """
    missing = [k for k in ("accuracy", "tflops_per_sample", "tflops_unpruned_per_sample", "mean_kept_tokens")
               if k not in metrics]
    if missing:
        raise ValueError(f"evaluation metrics lack {missing}; got {sorted(metrics)}")
    objective = settings.objective_config(reference_tflops=float(metrics["tflops_unpruned_per_sample"]))
    extra = {}
    for key in EXTRA_METRICS:
        value = metrics.get(key)
        # NNI's manager parses metrics with JSON.parse, which rejects NaN and Infinity
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            extra[key] = float(value)
    return objective.final_metrics(
        float(metrics["accuracy"]), float(metrics["tflops_per_sample"]), float(metrics["mean_kept_tokens"]), **extra
    )


def run_trial(
    params: Mapping[str, Any],
    settings: TrialSettings,
    evaluate: Evaluate | None = None,
    report: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Evaluate one setting and return the final metrics dict (what ``nni.report_final_result`` gets).

    Args:
        params: ``{"variance_threshold": ..., "budget": int | "adaptive", "min_tokens"?, "max_tokens"?}``.
        settings: task, data, model and objective.
        evaluate: the evaluation (default :func:`adaptive_svdprune.evaluation.run_evaluation`).
        report: called with the metrics dict after each evaluated chunk (``nni.report_intermediate_result``).

    Raises:
        ValueError: bad parameters or settings, or evaluation metrics without the needed keys.
    """
    if evaluate is None:
        from adaptive_svdprune.evaluation import run_evaluation

        evaluate = run_evaluation
    from adaptive_svdprune.pruning.config import SVDPruneConfig

    SVDPruneConfig(**parse_trial_parameters(params))  # bad parameters fail here, before any model is loaded
    parse_anyres_split(params, settings.anyres_split)
    step, stop = settings.report_every, settings.limit
    limit = stop if step is None else step if stop is None else min(step, stop)
    previous = -1
    while True:
        metrics = evaluate(eval_config(params, settings, limit=limit))
        result = trial_metrics(metrics, settings)
        if report is not None:
            report(result)
        seen = int(metrics.get("samples", 0)) + int(metrics.get("skipped", 0))
        # done: one chunk, the limit reached, the split exhausted, or no progress (never loop forever)
        if step is None or limit is None or limit == stop or seen < limit or seen <= previous:
            return result
        previous = seen
        limit = limit + step if stop is None else min(limit + step, stop)


def with_parameters(final: Mapping[str, Any], params: Mapping[str, Any], parameter_id: Any) -> dict[str, Any]:
    """The final metric with the parameters the trial ran (same keys as the search space) and their id.

    Example:
        >>> with_parameters({"default": 0.5}, {"variance_threshold": 0.9, "budget": "adaptive"}, 3)
        {'default': 0.5, 'variance_threshold': 0.9, 'budget': 'adaptive', 'parameter_id': 3}
    """
    ran = {k: params[k] for k in TRIAL_PARAMETERS if k in params}
    return {**final, **ran, **({} if parameter_id is None else {"parameter_id": parameter_id})}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m adaptive_svdprune.search.trial`` (one per :class:`TrialSettings` field)."""
    p = argparse.ArgumentParser(prog="python -m adaptive_svdprune.search.trial", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, help="gqa, textvqa or jsonl")
    p.add_argument("--data", required=True, help="the task's data folder")
    p.add_argument("--model", default="tiny", help="hub id or checkpoint folder; 'tiny' (default): offline tiny LLaVA")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="weight dtype (default: as saved)")
    p.add_argument("--params", default=None, metavar="JSON",
                   help="parameters outside NNI; under NNI, fixed values for keys the search space lacks")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, default=None, help="first N questions only (default: whole split)")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--out", default=None, help="evaluation output folder (default: the NNI trial folder)")
    p.add_argument("--feature-cache", default=None, metavar="DIR", help="vision-feature cache shared by trials")
    p.add_argument("--objective", choices=OBJECTIVE_MODES, default="scalarized")
    p.add_argument("--lam", type=float, default=0.5, help="FLOPs weight (scalarized, default %(default)s)")
    p.add_argument("--max-tflops", type=float, default=None, help="FLOPs cap per sample (constrained)")
    p.add_argument("--penalty", type=float, default=1.0, help="infeasible slope (constrained)")
    p.add_argument("--fidelity", action="store_true", help="also score agreement with the unpruned answers")
    p.add_argument("--ocr", action="store_true", help="TextVQA/JSONL: OCR tokens in the prompt")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--report-every", type=int, default=None, metavar="N",
                   help="intermediate result every N questions (default: once, after the evaluation)")
    p.add_argument("--wandb", action="store_true", help="log the evaluation to W&B")
    p.add_argument("--anyres-split", choices=ANYRES_SPLITS, default="global",
                   help="LLaVA-NeXT/OneVision: global (default) or per_view selection, unless the space chooses it")
    return p


def settings_from_args(args: argparse.Namespace) -> TrialSettings:
    """:class:`TrialSettings` from parsed :func:`build_parser` arguments."""
    names = set(TrialSettings.__dataclass_fields__)
    return TrialSettings(**{k: v for k, v in vars(args).items() if k in names})


def main(argv: Sequence[str] | None = None, evaluate: Evaluate | None = None) -> int:
    """Entry point: read the parameters, run the trial, report to NNI; 0 on success, 1 on any error."""
    args = build_parser().parse_args(argv)
    try:
        import nni

        settings = settings_from_args(args)
        fixed = json.loads(args.params) if args.params else {}
        if not isinstance(fixed, dict):
            raise ValueError(f"--params must be a JSON object, got {args.params!r}")
        if os.environ.get("NNI_PLATFORM"):
            params = {**fixed, **(nni.get_next_parameter() or {})}
        elif args.params is None:
            raise ValueError("not running under NNI: pass the parameters with --params JSON")
        else:
            params = fixed
        print(f"trial {nni.get_trial_id()}: parameters {json.dumps(params)}", flush=True)
        final = run_trial(params, settings, evaluate=evaluate, report=nni.report_intermediate_result)
        record = nni.trial._params  # what this trial received, with its parameter id (None outside NNI)
        final = with_parameters(final, params, record.get("parameter_id") if record else None)
        nni.report_final_result(final)
    except Exception:  # any failure: non-zero exit, so NNI marks the trial FAILED and carries on
        traceback.print_exc()
        print("trial failed", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
