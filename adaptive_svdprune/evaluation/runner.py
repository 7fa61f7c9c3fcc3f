"""``run_evaluation(EvalConfig(...))``: the one entry point of the ``eval`` command and of every search trial.

Order of work: validate the settings (config types, the accelerator, the data), lock the output folder,
check that its predictions were written with the same settings (``run.json``), repair a torn tail, generate
the questions not answered yet, then compute the report from the de-duplicated predictions file, so a
resumed, concurrent-crashed or multi-device run counts every question exactly once. Only the global rank 0
writes files and logs.
"""

from __future__ import annotations

import os
import resource
import sys
import warnings
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from adaptive_svdprune.evaluation.config import EvalConfig
from adaptive_svdprune.evaluation.module import PrunedLlavaEvaluator, metrics_from_records
from adaptive_svdprune.evaluation.predictions import finite, read_predictions, repair_predictions, write_json
from adaptive_svdprune.evaluation.run_folder import OutputLock, check_resume, fingerprint_id, is_global_zero
from adaptive_svdprune.pruning.config import SelectorConfig

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_svdprune.models.anyres import Split

__all__ = ["run_evaluation"]

#: Metric names shared with the search (``tradeoffs``/NNI reports): what dashboards compare across jobs.
SHARED_METRICS: tuple[str, ...] = ("accuracy", "tflops", "mean_kept_tokens", "fidelity")

_MODEL_CACHE: dict[tuple[str, str | None], tuple[Any, Any]] = {}


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak_kb / 1024 if sys.platform != "darwin" else peak_kb / 2**20


def _check_accelerator(cfg: EvalConfig) -> None:
    """A GPU asked for on a machine without CUDA is one clear error, before the model is loaded."""
    if cfg.strategy.startswith("ddp_spawn"):
        # NOTE: ddp_spawn pickles the model; transformers 5 installs its output-capturing hooks as local
        # functions, which do not survive it (the vision tower then returns no hidden states).
        raise ValueError(f"strategy {cfg.strategy!r} is not supported: it pickles the model, which loses "
                         f"transformers' output hooks; use strategy 'ddp' (one process per device)")
    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"accelerator {cfg.accelerator!r} needs CUDA, but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__}); use accelerator 'cpu' (--accelerator cpu)")


def _load(cfg: EvalConfig) -> tuple[Any, Any]:
    from adaptive_svdprune.models.families import load_model
    from adaptive_svdprune.models.names import resolve_model_path

    key = (cfg.model, cfg.dtype)
    if key not in _MODEL_CACHE:  # search trials in one process (and tests) reuse one loaded model
        path = resolve_model_path(cfg.model)
        dtype = getattr(torch, cfg.dtype) if cfg.dtype else None
        _MODEL_CACHE[key] = load_model(path, dtype=dtype)
    return _MODEL_CACHE[key]


def _wandb_group(cfg: EvalConfig, out: Path) -> str:
    if cfg.wandb_group:
        return cfg.wandb_group
    if os.environ.get("NNI_EXP_ID"):
        return os.environ["NNI_EXP_ID"]
    if cfg.profile:
        return Path(cfg.profile).stem
    return out.resolve().name


def _loggers(cfg: EvalConfig, out: Path, selector: SelectorConfig) -> list[Any]:
    """CSV always; W&B unless disabled (``cfg.wandb`` false or ``WANDB_MODE=disabled``).

    W&B runs are offline when ``WANDB_MODE`` is unset and follow ``WANDB_MODE`` otherwise (``online``
    uploads). Every run has a ``group`` (see :func:`_wandb_group`), ``tags`` (task, model, method),
    ``job_type="eval"`` and the model, task and selector in its config.
    """
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(out, name="logs")]
    mode = os.environ.get("WANDB_MODE")
    if cfg.wandb and mode != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        tags = [cfg.task, cfg.model[-64:], selector.method]  # W&B caps a tag at 64 characters
        loggers.append(WandbLogger(project=cfg.wandb_project, save_dir=str(out), offline=mode is None,
                                   name=f"{cfg.task}-{selector.method}-{out.resolve().name}",
                                   group=_wandb_group(cfg, out), tags=tags, job_type="eval",
                                   config={**asdict(cfg), "selector": selector.to_dict()}))
    return loggers


def _log(loggers: list[Any], metrics: dict[str, Any]) -> None:
    numbers = {k: float(v) for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")}
    try:
        for logger in loggers:
            logger.log_metrics(numbers, step=0)
            logger.save()
            logger.finalize("success")
    finally:
        if any(type(logger).__name__ == "WandbLogger" for logger in loggers):
            import wandb

            wandb.finish()  # offline runs need it between runs in one process


def _fingerprint(cfg: EvalConfig, model: Any, data_dir: Path, protocol: str,
                 selector: SelectorConfig) -> dict[str, Any]:
    """Everything that changes an answer or its cost; ``limit``, ``batch_size`` and devices do not."""
    from adaptive_svdprune.data.prompts import SHORT_ANSWER_INSTRUCTION
    from adaptive_svdprune.models.feature_cache import model_cache_key

    fingerprint = {
        "format": 1, "model": cfg.model, "model_key": model_cache_key(model, cfg.model), "dtype": cfg.dtype,
        "precision": cfg.precision, "task": cfg.task, "data": str(data_dir.resolve()), "split": cfg.split,
        "protocol": protocol, "instruction": SHORT_ANSWER_INSTRUCTION, "selector": selector.to_dict(),
        "max_new_tokens": cfg.max_new_tokens, "fidelity": cfg.fidelity,
    }
    # NOTE: recorded only when not the default, so folders written before the key existed (all global) still
    # resume; a per_view run and a global one differ in it either way.
    if cfg.anyres_split != "global":
        fingerprint["anyres_split"] = cfg.anyres_split
    return fingerprint


def _drop_reserved_questions(dataset: Any, processor: Any, skip_bad: bool) -> None:
    """Questions holding the processor's image token would give the model a second image slot."""
    token = getattr(processor, "image_token", None)
    if not token or token == "<image>":  # the dataset already checks the usual placeholder tokens
        return
    bad = [s for s in dataset.samples if token in dataset.question_text(s)]
    if bad and not skip_bad:
        raise ValueError(f"question {bad[0].question_id} in {dataset.source} contains the image placeholder "
                         f"{token!r} (pass skip_bad to skip and count such questions)")
    dataset.skipped.extend((s.question_id, f"question text contains {token!r}") for s in bad)
    dataset.samples = [s for s in dataset.samples if s not in bad]


def _feature_shape(model: Any) -> tuple[int, int] | None:
    """The ``(T, D)`` of one image's pre-projector features (LLaVA-1.5 geometry), or None when not fixed."""
    config = model.config
    vision = getattr(config, "vision_config", None)
    layer = getattr(config, "vision_feature_layer", None)
    strategy = getattr(config, "vision_feature_select_strategy", None)
    try:
        side = int(vision.image_size) // int(vision.patch_size)  # type: ignore[union-attr]
        width = int(vision.hidden_size)  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return None
    # only LLaVA-1.5 has one fixed grid per image (NeXT/OneVision tile, Qwen-VL resizes dynamically)
    if type(model).__name__ != "LlavaForConditionalGeneration" or not isinstance(layer, int) \
            or strategy not in ("default", "full"):
        return None
    return side * side + (1 if strategy == "full" else 0), width


def _clear(out: Path) -> None:
    for name in ("predictions.jsonl", "run.json", "metrics.json"):
        (out / name).unlink(missing_ok=True)


def run_evaluation(cfg: EvalConfig, loaded: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Evaluate one pruning config on one task; write ``metrics.json``, ``predictions.jsonl`` and ``run.json``.

    Answers are appended to ``predictions.jsonl`` as they are produced; running again with the same ``out``
    and the same settings resumes (finished questions are read back, not generated again). Other settings in
    the same ``out`` are refused (:class:`~adaptive_svdprune.evaluation.run_folder.ResumeMismatchError`) unless
    ``cfg.overwrite``; a second writer on the same ``out`` is refused
    (:class:`~adaptive_svdprune.evaluation.run_folder.OutputLockedError`).

    Args:
        cfg: the run's settings.
        loaded: an already loaded ``(model, processor)`` (search trials reuse one).

    Returns:
        The metrics (also written to ``metrics.json``, strict JSON): ``accuracy``, ``fidelity`` (when computed),
        ``mean_kept_tokens``/``min_kept_tokens``/``max_kept_tokens``, ``tflops`` (= ``tflops_per_sample``),
        ``tflops_unpruned_per_sample``, ``latency_s_per_sample`` (generation only; ``None`` when nothing was
        generated), ``peak_memory_mb``, ``samples``, ``skipped``, ``resumed``, ``protocol``, ``config``. A
        non-zero rank of a multi-process run returns ``{}`` (rank 0 reports).
    """
    from lightning.pytorch import Trainer

    from adaptive_svdprune.data import VQADataModule, load_task
    from adaptive_svdprune.models.families import check_split, model_class_name, prune_model
    from adaptive_svdprune.models.feature_cache import FeatureCache, model_cache_key

    selector = cfg.selector_config()
    if cfg.anyres_split != "global":  # from the checkpoint's config: before the data and the weights are read
        check_split(cfg.anyres_split, type(loaded[0]).__name__ if loaded is not None else model_class_name(cfg.model),
                    "anyres_split")
    data_dir = cfg.data_dir()
    _check_accelerator(cfg)
    # the data is checked before a (possibly large) model is loaded
    dataset = load_task(cfg.task, data_dir, split=cfg.split, limit=cfg.limit, ocr=cfg.ocr, skip_bad=cfg.skip_bad)
    if not dataset.samples and not dataset.skipped:
        raise ValueError(f"no questions in {dataset.source}: nothing to evaluate")
    model, processor = loaded if loaded is not None else _load(cfg)
    datamodule = VQADataModule(cfg.task, data_dir, processor, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                               limit=cfg.limit, ocr=cfg.ocr, skip_bad=cfg.skip_bad, split=cfg.split)
    datamodule.dataset = dataset
    _drop_reserved_questions(dataset, processor, cfg.skip_bad)
    if not dataset.samples:
        raise ValueError(f"all {len(dataset.skipped)} questions of {dataset.source} were skipped (first: "
                         f"question {dataset.skipped[0][0]}: {dataset.skipped[0][1]}): nothing to evaluate")
    wanted = {s.question_id for s in dataset.samples}

    out = Path(cfg.out)
    writer = is_global_zero()
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, got the file {out}")
    lock = OutputLock(out) if writer else nullcontext()
    with lock:
        predictions_path = out / "predictions.jsonl"
        fingerprint = _fingerprint(cfg, model, data_dir, dataset.protocol, selector)
        run_id = fingerprint_id(fingerprint)
        if writer:
            if cfg.overwrite:
                _clear(out)
            if repair_predictions(predictions_path) == "cut":
                warnings.warn(f"{predictions_path}: cut a torn last record (a killed writer); it is generated again",
                              stacklevel=2)
        existing = read_predictions(predictions_path)
        if writer:
            check_resume(out, fingerprint, existing)
        previous = [r for r in existing if str(r["question_id"]) in wanted]
        done = {str(r["question_id"]) for r in previous}
        dataset.samples = [s for s in dataset.samples if s.question_id not in done]

        cache = None
        if cfg.feature_cache:
            cache = FeatureCache(cfg.feature_cache, model_cache_key(model, cfg.model),
                                 feature_shape=_feature_shape(model))
        reference_answers = {str(r["question_id"]): r["reference_answer"] for r in previous
                             if r.get("reference_answer")}
        if dataset.samples:
            split = cast("Split", cfg.anyres_split)  # one of SPLITS: EvalConfig checks it
            module = PrunedLlavaEvaluator(prune_model(model, selector, split=split), processor, cfg.task,
                                          max_new_tokens=cfg.max_new_tokens, predictions_path=predictions_path,
                                          previous=previous, fidelity=cfg.fidelity, feature_cache=cache,
                                          reference_answers=reference_answers, run_id=run_id)
            trainer = Trainer(accelerator="gpu" if cfg.accelerator == "cuda" else cfg.accelerator,
                              devices=cfg.devices, strategy=cfg.strategy, precision=cfg.precision,  # type: ignore[arg-type]
                              logger=False, enable_progress_bar=cfg.progress_bar, enable_model_summary=False,
                              enable_checkpointing=False, default_root_dir=str(out))
            trainer.test(module, datamodule=datamodule, verbose=False)
            if not trainer.is_global_zero:
                return {}
        if not is_global_zero():
            return {}
        records = [r for r in read_predictions(predictions_path) if str(r["question_id"]) in wanted]
        missing = wanted - {str(r["question_id"]) for r in records}
        if missing:  # never report over a subset silently
            raise RuntimeError(f"{len(missing)} questions have no prediction in {predictions_path} after the run "
                               f"(e.g. {sorted(missing)[:5]})")
        metrics: dict[str, Any] = dict(metrics_from_records(records, cfg.task))
        metrics.update(
            peak_memory_mb=_peak_memory_mb(), samples=len(records), skipped=len(dataset.skipped),
            resumed=len(previous), protocol=dataset.protocol, task=cfg.task, model=cfg.model,
            method=selector.method, config=selector.to_dict(), run=run_id,
            feature_cache_hits=cache.hits if cache else 0,
            feature_cache_dropped=cache.dropped if cache else 0,
        )
        metrics = finite(metrics)
        write_json(out / "metrics.json", metrics)
        _log(_loggers(cfg, out, selector), metrics)
    return metrics
