"""Lightning evaluation of a pruned LLaVA: accuracy next to FLOPs, kept tokens, latency and memory.

``PrunedLlavaEvaluator`` is a ``LightningModule`` around :class:`~adaptive_svdprune.models.llava.PrunedLlava`
(the model is never trained): each ``test_step`` generates greedy answers for a batch and appends them to a
JSONL file as they are produced. ``run_evaluation(EvalConfig(...))`` is the one entry point used by the
``eval`` command and by every search trial.

- :mod:`~adaptive_svdprune.evaluation.config`: ``EvalConfig`` (type-checked; explicit settings beat a profile).
- :mod:`~adaptive_svdprune.evaluation.run_folder`: one writer per output folder, and the settings fingerprint
  that decides whether a run may resume from the predictions already there.
- :mod:`~adaptive_svdprune.evaluation.predictions`: reading (first record per question id), repairing and
  strict-JSON writing of the predictions and reports.
- :mod:`~adaptive_svdprune.evaluation.module`: the LightningModule and the metrics.
- :mod:`~adaptive_svdprune.evaluation.runner`: ``run_evaluation``.

Example:
    >>> cfg = EvalConfig(task="gqa", method="svd", budget=16, limit=2, out="/tmp/asp-doctest", wandb=False,
    ...                  fidelity=False, progress_bar=False)
    >>> metrics = run_evaluation(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

from adaptive_svdprune.evaluation.config import EvalConfig
from adaptive_svdprune.evaluation.module import EvalMetrics, PrunedLlavaEvaluator, metrics_from_records
from adaptive_svdprune.evaluation.predictions import read_predictions, strict_json
from adaptive_svdprune.evaluation.run_folder import OutputLock, OutputLockedError, ResumeMismatchError
from adaptive_svdprune.evaluation.runner import run_evaluation

__all__ = [
    "EvalConfig",
    "EvalMetrics",
    "OutputLock",
    "OutputLockedError",
    "PrunedLlavaEvaluator",
    "ResumeMismatchError",
    "metrics_from_records",
    "read_predictions",
    "run_evaluation",
    "strict_json",
]
