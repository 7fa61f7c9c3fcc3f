"""Lightning evaluation of a pruned LLaVA: accuracy next to FLOPs, kept tokens, latency and memory.

``PrunedLlavaEvaluator`` is a ``LightningModule`` around :class:`~adaptive_svdprune.models.llava.PrunedLlava`
(the model is never trained): each ``test_step`` generates greedy answers for a batch, appends them to a JSONL
file as they are produced, and updates torchmetrics state (distributed-safe, so Lightning's ``devices`` /
``strategy`` flags give multi-GPU evaluation). ``run_evaluation(EvalConfig(...))`` is the one entry point used by
the ``eval`` command and by every search trial. A run interrupted midway resumes from its predictions file: the
answers already there are replayed into the metrics and their questions are not generated again.

Example:
    >>> cfg = EvalConfig(task="gqa", method="svd", budget=16, limit=2, out="/tmp/asp-doctest", wandb=False,
    ...                  fidelity=False, progress_bar=False)
    >>> metrics = run_evaluation(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torchmetrics import MaxMetric, MeanMetric, MinMetric

from adaptive_svdprune.metrics import AnswerFidelity, metric_for_task
from adaptive_svdprune.pruning.config import BaselineConfig, SelectorConfig, SVDPruneConfig, config_from_dict

__all__ = ["EvalConfig", "PrunedLlavaEvaluator", "read_predictions", "run_evaluation"]

_REPO_FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


@dataclass
class EvalConfig:
    """Everything one evaluation run needs (the keys of ``configs/*.yaml``).

    Args:
        model: ``"tiny"`` (the offline tiny LLaVA), a hub id such as ``"llava-hf/llava-1.5-7b-hf"`` or a folder.
        task: ``"gqa"``, ``"textvqa"`` or ``"jsonl"``.
        data: the task's folder in the official layout (``None`` with the tiny model: the bundled fixtures).
        method: ``"svd"`` or a baseline (``none``, ``random``, ``uniform``, ``l2norm``, ``cls_attention``,
            ``fastv``).
        variance_threshold, budget, min_tokens, max_tokens, solver: SVD-Prune settings (``budget=None`` is
            adaptive); baselines use ``budget``.
        profile: a deployment profile; when set, ``variance_threshold``/``budget``/... come from its entry
            for ``task``.
        fidelity: also answer with the unpruned model (on the same cached features) and report agreement.
        feature_cache: folder of the vision-feature cache shared across runs (``None``: no cache).
        out: output folder (``metrics.json``, ``predictions.jsonl``, logs).
        wandb: log to Weights & Biases (offline unless ``WANDB_MODE`` says otherwise).
    """

    model: str = "tiny"
    task: str = "gqa"
    data: str | None = None
    method: str = "svd"
    variance_threshold: float = 0.9
    budget: int | None = 64
    min_tokens: int = 1
    max_tokens: int | None = None
    solver: str = "auto"
    seed: int = 0
    fastv_layer: int = 2
    profile: str | None = None
    batch_size: int = 4
    limit: int | None = None
    max_new_tokens: int = 16
    ocr: bool = False
    skip_bad: bool = False
    split: str | None = None
    fidelity: bool = True
    feature_cache: str | None = None
    out: str = "runs/eval"
    wandb: bool = True
    wandb_project: str = "adaptive-svdprune"
    dtype: str | None = None
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        """Build from a config-file dict; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown evaluation config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def selector_config(self) -> SelectorConfig:
        """The pruning config this run evaluates."""
        if self.method == "svd":
            if self.profile:
                from adaptive_svdprune.profiles import load_profile

                return load_profile(self.profile).config_for(self.task, solver=self.solver)
            return SVDPruneConfig(self.variance_threshold, budget=self.budget, min_tokens=self.min_tokens,
                                  max_tokens=self.max_tokens, solver=self.solver)  # type: ignore[arg-type]
        return config_from_dict({"method": self.method, "budget": self.budget, "seed": self.seed,
                                 "fastv_layer": self.fastv_layer})

    def data_dir(self) -> Path:
        """The data folder, defaulting to the bundled fixtures for the tiny model."""
        from adaptive_svdprune.data import available_tasks

        if self.task not in available_tasks():
            raise ValueError(f"unknown task {self.task!r}; known tasks: {sorted(available_tasks())}")
        if self.data is not None:
            return Path(self.data)
        if self.model == "tiny" and (_REPO_FIXTURES / self.task).exists():
            return _REPO_FIXTURES / self.task
        raise ValueError(f"no data folder for task {self.task!r}: pass data (the official download's folder)")


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Records of a predictions JSONL file; a torn last line (a killed writer) is ignored."""
    records: list[dict[str, Any]] = []
    if not path.exists():
        return records
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number} is not valid JSON; the predictions file is corrupt") from None
    return records


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a killed writer left unfinished, so appended records start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak_kb / 1024 if sys.platform != "darwin" else peak_kb / 2**20


class PrunedLlavaEvaluator(LightningModule):
    """Runs pruned generation in ``test_step`` and accumulates accuracy, fidelity and cost metrics.

    Args:
        pruned: the wrapped model.
        processor: its processor (decodes answers).
        task: selects the accuracy metric (GQA exact match or VQA accuracy).
        max_new_tokens: generation length cap.
        predictions_path: JSONL file the records are appended to (flushed per batch).
        previous: records of an interrupted run, replayed into the metrics.
        fidelity: also generate with every token kept and compare answers.
        feature_cache: a :class:`~adaptive_svdprune.models.feature_cache.FeatureCache` or None.
        reference_answers: unpruned answers already known (question id -> answer), reused for fidelity.
    """

    def __init__(self, pruned: Any, processor: Any, task: str, *, max_new_tokens: int = 16,
                 predictions_path: Path | None = None, previous: Iterable[dict[str, Any]] = (),
                 fidelity: bool = False, feature_cache: Any = None,
                 reference_answers: dict[str, str] | None = None) -> None:
        super().__init__()
        from adaptive_svdprune.models.llava import prune_llava

        self.model = pruned.model  # registered so Lightning places it on the device
        self.pruned = pruned
        self.reference = prune_llava(pruned.model, BaselineConfig("none"), pad_token_id=pruned.pad_token_id)
        self.processor = processor
        self.task = task
        self.max_new_tokens = max_new_tokens
        self.predictions_path = predictions_path
        self.previous = list(previous)
        self.with_fidelity = fidelity
        self.feature_cache = feature_cache
        self.reference_answers = dict(reference_answers or {})
        self.accuracy = metric_for_task(task)
        self.fidelity = AnswerFidelity("gqa" if task == "gqa" else "vqa")
        self.kept_mean, self.kept_min, self.kept_max = MeanMetric(), MinMetric(), MaxMetric()
        self.tflops, self.tflops_unpruned, self.latency = MeanMetric(), MeanMetric(), MeanMetric()

    # -- features (cached per image when a cache is given) -------------------------------------------------
    def _features(self, batch: dict[str, Any]) -> Any:
        from adaptive_svdprune.models.vision import VisionFeatures

        pixel_values = batch["pixel_values"]
        with_cls = "cls_attention" in self.pruned.config.requires
        if self.feature_cache is None:
            return self.pruned.vision_features(pixel_values, cls_attention=with_cls)
        paths = batch["image_paths"]
        entries = [self.feature_cache.get(p) for p in paths]
        missing = [i for i, e in enumerate(entries) if e is None or (with_cls and "cls_attention" not in e)]
        if missing:
            fresh = self.pruned.vision_features(pixel_values[missing], cls_attention=True)
            for j, i in enumerate(missing):
                entry = {"features": fresh.features[j]}
                if fresh.cls_attention is not None:
                    entry["cls_attention"] = fresh.cls_attention[j]
                self.feature_cache.put(paths[i], entry)
                entries[i] = entry
        device = self.model.get_input_embeddings().weight.device
        feats = torch.stack([e["features"] for e in entries]).to(device)
        attn = torch.stack([e["cls_attention"] for e in entries]).to(device) if with_cls else None
        return VisionFeatures(feats, attn)

    def _answers(self, wrapper: Any, batch: dict[str, Any], features: Any) -> tuple[list[str], list[int]]:
        tokens = wrapper.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  image_features=features, max_new_tokens=self.max_new_tokens, do_sample=False)
        tokenizer = self.processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        lengths = []
        for row in tokens.tolist():
            stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
            lengths.append(len(row) if stop is None else stop + 1)
        texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [t.strip() for t in texts], lengths

    def _flops(self, batch: dict[str, Any], kept: list[int], new_tokens: list[int]) -> tuple[list[float], list[float]]:
        from adaptive_svdprune.flops import batch_flops

        cfg = self.model.config
        placeholders = (batch["input_ids"] == cfg.image_token_id) & batch["attention_mask"].bool()
        text = (batch["attention_mask"].sum(-1) - placeholders.sum(-1)).tolist()
        full_tokens = (placeholders.sum(-1)).tolist()
        config = self.pruned.config
        solver = config.solver if isinstance(config, SVDPruneConfig) else None
        if solver == "auto":
            solver = "gram"
        pruned = batch_flops(cfg, kept if config.method != "fastv" else full_tokens, text, new_tokens,
                             selection_solver=solver if config.method not in ("none",) else None)
        unpruned = batch_flops(cfg, full_tokens, text, new_tokens, selection_solver=None)
        totals = [p.total for p in pruned]
        if config.method == "fastv":  # FastV keeps every token for its first layers: weight by layer count
            fast = batch_flops(cfg, kept, text, new_tokens, selection_solver=None)
            share = min(1.0, self.pruned.config.fastv_layer / cfg.text_config.num_hidden_layers)
            totals = [f.vision + f.projector + share * (u.llm_prefill + u.decode) + (1 - share) *
                      (f.llm_prefill + f.decode) for f, u in zip(fast, unpruned, strict=True)]
        return [t / 1e12 for t in totals], [u.total / 1e12 for u in unpruned]

    def _update(self, records: list[dict[str, Any]]) -> None:
        self.accuracy.update([r["answer"] for r in records], [r["answers"] if self.task != "gqa" else r["answers"][0]
                                                              for r in records])
        refs = [r for r in records if r.get("reference_answer") is not None]
        if refs:
            self.fidelity.update([r["answer"] for r in refs], [r["reference_answer"] for r in refs])
        for r in records:
            self.kept_mean.update(r["mean_kept_tokens"])
            self.kept_min.update(r["mean_kept_tokens"])
            self.kept_max.update(r["mean_kept_tokens"])
            self.tflops.update(r["tflops"])
            self.tflops_unpruned.update(r["tflops_unpruned"])
            if r.get("latency_s") is not None:
                self.latency.update(r["latency_s"])

    def on_test_start(self) -> None:
        if self.previous:
            self._update(self.previous)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        features = self._features(batch)
        start = time.perf_counter()
        answers, new_tokens = self._answers(self.pruned, batch, features)
        latency = (time.perf_counter() - start) / len(answers)
        selection = self.pruned.last_selection
        counts = self.pruned.last_kept_counts
        tflops, tflops_full = self._flops(batch, counts, new_tokens)
        qids = batch["question_ids"]
        reference: list[str | None] = [self.reference_answers.get(q) for q in qids]
        if self.with_fidelity and any(r is None for r in reference):
            reference, _ = self._answers(self.reference, batch, features)  # type: ignore[assignment]
        records = [
            {"question_id": q, "answer": a, "answers": gt, "reference_answer": ref, "kept_tokens": [k],
             "mean_kept_tokens": float(k), "rank": int(selection.rank[i]) if selection is not None else 0,
             "new_tokens": n, "tflops": tf, "tflops_unpruned": tfu, "latency_s": latency}
            for i, (q, a, gt, ref, k, n, tf, tfu) in enumerate(zip(qids, answers, batch["answers"], reference, counts,
                                                                   new_tokens, tflops, tflops_full, strict=True))
        ]
        if self.predictions_path is not None:
            with self.predictions_path.open("a") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in records)
                handle.flush()
                os.fsync(handle.fileno())
        self._update(records)

    def compute_metrics(self) -> dict[str, float]:
        """Metric values over everything seen (replayed and new)."""
        metrics = {"accuracy": float(self.accuracy.compute())}
        if self.fidelity.total > 0:
            metrics["fidelity"] = float(self.fidelity.compute())
        metrics.update(
            mean_kept_tokens=float(self.kept_mean.compute()), min_kept_tokens=float(self.kept_min.compute()),
            max_kept_tokens=float(self.kept_max.compute()), tflops_per_sample=float(self.tflops.compute()),
            tflops_unpruned_per_sample=float(self.tflops_unpruned.compute()),
            latency_s_per_sample=float(self.latency.compute()) if self.latency.update_count else float("nan"),
        )
        return metrics

    def on_test_epoch_end(self) -> None:
        self.log_dict({k: v for k, v in self.compute_metrics().items() if v == v}, sync_dist=False)


_MODEL_CACHE: dict[tuple[str, str | None], tuple[Any, Any]] = {}


def _load(cfg: EvalConfig) -> tuple[Any, Any]:
    from adaptive_svdprune.models.llava import load_llava
    from adaptive_svdprune.models.names import resolve_model_path

    key = (cfg.model, cfg.dtype)
    if key not in _MODEL_CACHE:  # search trials in one process (and tests) reuse one loaded model
        path = resolve_model_path(cfg.model)
        dtype = getattr(torch, cfg.dtype) if cfg.dtype else None
        _MODEL_CACHE[key] = load_llava(path, dtype=dtype)
    return _MODEL_CACHE[key]


def _loggers(cfg: EvalConfig, out: Path, selector: SelectorConfig) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(out, name="logs")]
    if cfg.wandb and os.environ.get("WANDB_MODE") != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=cfg.wandb_project, save_dir=str(out), offline=True,
                                   name=f"{cfg.task}-{selector.method}-{out.name}",
                                   config={**asdict(cfg), "selector": selector.to_dict()}))
    return loggers


def run_evaluation(cfg: EvalConfig, loaded: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Evaluate one pruning config on one task; write ``metrics.json`` and ``predictions.jsonl`` under ``cfg.out``.

    Answers are appended to ``predictions.jsonl`` as they are produced; running again with the same ``out``
    resumes: finished questions are read back, not generated again.

    Args:
        cfg: the run's settings.
        loaded: an already loaded ``(model, processor)`` (search trials reuse one).

    Returns:
        The metrics (also written to ``metrics.json``): ``accuracy``, ``fidelity`` (when computed),
        ``mean_kept_tokens``/``min_kept_tokens``/``max_kept_tokens``, ``tflops_per_sample``,
        ``tflops_unpruned_per_sample``, ``latency_s_per_sample`` (generation only), ``peak_memory_mb``,
        ``samples``, ``skipped``, ``protocol``, ``config``.
    """
    from lightning.pytorch import Trainer

    from adaptive_svdprune.data import VQADataModule
    from adaptive_svdprune.models.feature_cache import FeatureCache, model_cache_key
    from adaptive_svdprune.models.llava import prune_llava

    selector = cfg.selector_config()
    data_dir = cfg.data_dir()
    model, processor = loaded if loaded is not None else _load(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path = out / "predictions.jsonl"
    previous = read_predictions(predictions_path)
    _drop_torn_tail(predictions_path)
    done = {r["question_id"] for r in previous}

    datamodule = VQADataModule(cfg.task, data_dir, processor, batch_size=cfg.batch_size, limit=cfg.limit, ocr=cfg.ocr,
                               skip_bad=cfg.skip_bad, split=cfg.split)
    datamodule.setup("test")
    dataset = datamodule.dataset
    assert dataset is not None
    total = len(dataset)
    previous = [r for r in previous if r["question_id"] in {s.question_id for s in dataset.samples}]
    dataset.samples = [s for s in dataset.samples if s.question_id not in done]

    cache = FeatureCache(cfg.feature_cache, model_cache_key(model, cfg.model)) if cfg.feature_cache else None
    reference_answers = {r["question_id"]: r["reference_answer"] for r in previous if r.get("reference_answer")}
    module = PrunedLlavaEvaluator(prune_llava(model, selector), processor, cfg.task,
                                  max_new_tokens=cfg.max_new_tokens, predictions_path=predictions_path,
                                  previous=previous, fidelity=cfg.fidelity, feature_cache=cache,
                                  reference_answers=reference_answers)
    loggers = _loggers(cfg, out, selector)
    try:
        if dataset.samples:
            trainer = Trainer(accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
                              logger=loggers, enable_progress_bar=cfg.progress_bar, enable_model_summary=False,
                              enable_checkpointing=False, default_root_dir=str(out))
            trainer.test(module, datamodule=datamodule, verbose=False)
        else:
            module.on_test_start()
        metrics: dict[str, Any] = module.compute_metrics()
    finally:
        for logger in loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                wandb.finish()
    metrics.update(
        peak_memory_mb=_peak_memory_mb(), samples=total - len(dataset.skipped), skipped=len(dataset.skipped),
        resumed=len(previous), protocol=dataset.protocol, task=cfg.task, model=cfg.model,
        method=selector.method, config=selector.to_dict(),
        feature_cache_hits=cache.hits if cache else 0,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
