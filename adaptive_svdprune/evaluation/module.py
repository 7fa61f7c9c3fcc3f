"""``PrunedLlavaEvaluator``: the LightningModule that generates pruned answers and records them, and
``EvalMetrics``, the metric state both the module and the final report use.

On several devices Lightning's DistributedSampler pads the last batches with repeated samples: every
``test_step`` gathers the batch's records from all ranks, keeps the first record of each question id, and
only rank 0 appends them to the predictions file. Each rank then updates its metrics with the records it
produced itself, so synchronised metrics count every question exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torchmetrics import MaxMetric, MeanMetric, MinMetric

from adaptive_svdprune.evaluation.predictions import append_records
from adaptive_svdprune.metrics import AnswerFidelity, metric_for_task
from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig

__all__ = ["EvalMetrics", "PrunedLlavaEvaluator", "first_per_question", "metrics_from_records"]


class EvalMetrics(torch.nn.Module):
    """Accuracy, fidelity, kept tokens, FLOPs and latency over prediction records.

    Args:
        task: selects the accuracy metric (GQA exact match or VQA accuracy).
        sync: synchronise across processes on ``compute`` (Lightning's distributed runs); off for a report
            computed by one process from the de-duplicated predictions file.
    """

    def __init__(self, task: str, sync: bool = True) -> None:
        super().__init__()
        self.task = task
        self.accuracy = metric_for_task(task)
        self.fidelity = AnswerFidelity("gqa" if task == "gqa" else "vqa")
        self.kept_mean, self.kept_min, self.kept_max = MeanMetric(), MinMetric(), MaxMetric()
        self.tflops, self.tflops_unpruned, self.latency = MeanMetric(), MeanMetric(), MeanMetric()
        self.count = 0
        if not sync:
            for metric in self.children():
                metric.sync_on_compute = False  # type: ignore[assignment]
                metric._to_sync = False  # type: ignore[assignment]

    def update(self, records: list[dict[str, Any]]) -> None:
        """Add prediction records (the dicts of ``predictions.jsonl``)."""
        if not records:
            return
        self.count += len(records)
        targets = [r["answers"] if self.task != "gqa" else r["answers"][0] for r in records]
        self.accuracy.update([r["answer"] for r in records], targets)
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

    def compute(self) -> dict[str, float | None]:
        """The values; ``None`` where nothing was measured (no fidelity references, no generation timed)."""
        if self.count == 0:
            raise ValueError("no predictions to compute metrics from")
        metrics: dict[str, float | None] = {"accuracy": float(self.accuracy.compute())}
        if self.fidelity.total > 0:
            metrics["fidelity"] = float(self.fidelity.compute())
        tflops = float(self.tflops.compute())
        metrics.update(
            mean_kept_tokens=float(self.kept_mean.compute()), min_kept_tokens=float(self.kept_min.compute()),
            max_kept_tokens=float(self.kept_max.compute()), tflops=tflops, tflops_per_sample=tflops,
            tflops_unpruned_per_sample=float(self.tflops_unpruned.compute()),
            latency_s_per_sample=float(self.latency.compute()) if self.latency.update_count else None,
        )
        return metrics


def metrics_from_records(records: list[dict[str, Any]], task: str) -> dict[str, float | None]:
    """The metrics of de-duplicated ``records`` computed in this process alone (no distributed sync).

    Example:
        >>> r = {"answer": "red", "answers": ["red"], "mean_kept_tokens": 16.0, "tflops": 1.0,
        ...      "tflops_unpruned": 2.0, "latency_s": None}
        >>> m = metrics_from_records([r], "gqa")
        >>> m["accuracy"], m["tflops"], m["latency_s_per_sample"]
        (1.0, 1.0, None)
    """
    metrics = EvalMetrics(task, sync=False)
    metrics.update(records)
    return metrics.compute()


def _gather(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Every rank's records, in rank order (just ours when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [records]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, records)
    return gathered


def first_per_question(parts: list[list[dict[str, Any]]], seen: set[str],
                       rank: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """De-duplicate one step's records of every rank: ``(new records, the new records ``rank`` produced)``.

    ``parts`` holds each rank's records in rank order; a question already in ``seen`` (answered before, or
    earlier in this step: the DistributedSampler's padding repeats questions) is dropped. ``seen`` is updated.

    Example:
        >>> seen = {"q0"}
        >>> fresh, mine = first_per_question([[{"question_id": "q1"}], [{"question_id": "q1"},
        ...                                   {"question_id": "q0"}]], seen, rank=1)
        >>> [r["question_id"] for r in fresh], mine, sorted(seen)
        (['q1'], [], ['q0', 'q1'])
    """
    fresh: list[dict[str, Any]] = []
    mine: list[dict[str, Any]] = []
    for source, part in enumerate(parts):
        for record in part:
            if record["question_id"] in seen:
                continue
            seen.add(record["question_id"])
            fresh.append(record)
            if source == rank:
                mine.append(record)
    return fresh, mine


class PrunedLlavaEvaluator(LightningModule):
    """Runs pruned generation in ``test_step``, appends the records and accumulates the metrics.

    Args:
        pruned: the wrapped model.
        processor: its processor (decodes answers).
        task: selects the accuracy metric (GQA exact match or VQA accuracy).
        max_new_tokens: generation length cap.
        predictions_path: JSONL file the records are appended to (flushed per batch; rank 0 only).
        previous: records of an interrupted run, replayed into the metrics and never generated again.
        fidelity: also generate with every token kept and compare answers.
        feature_cache: a :class:`~adaptive_svdprune.models.feature_cache.FeatureCache` or None.
        reference_answers: unpruned answers already known (question id -> answer), reused for fidelity.
        run_id: the settings fingerprint stored in every record (``run``).
    """

    def __init__(self, pruned: Any, processor: Any, task: str, *, max_new_tokens: int = 16,
                 predictions_path: Path | None = None, previous: Iterable[dict[str, Any]] = (),
                 fidelity: bool = False, feature_cache: Any = None,
                 reference_answers: dict[str, str] | None = None, run_id: str | None = None) -> None:
        super().__init__()
        from adaptive_svdprune.models.families import prune_model

        self.model = pruned.model  # registered so Lightning places it on the device
        self.pruned = pruned
        self.reference = prune_model(pruned.model, BaselineConfig("none"), pad_token_id=pruned.pad_token_id)
        self.processor = processor
        self.task = task
        self.max_new_tokens = max_new_tokens
        self.predictions_path = predictions_path
        self.previous = list(previous)
        self.with_fidelity = fidelity
        self.feature_cache = feature_cache
        self.reference_answers = dict(reference_answers or {})
        self.run_id = run_id
        self.metrics = EvalMetrics(task)
        self.seen: set[str] = {str(r["question_id"]) for r in self.previous}

    # -- features (cached per image when a cache is given) -------------------------------------------------
    def _features(self, batch: dict[str, Any]) -> Any:
        pixel_values = batch["pixel_values"]
        with_cls = "cls_attention" in self.pruned.config.requires
        if "image_grid_thw" in batch:  # native resolution (Qwen2-VL): (T_i, D) merged tokens per image
            return self._merged_features(batch)
        # family-specific image inputs (LLaVA-NeXT/OneVision: image_sizes), passed along with the pixels
        extra = {k: batch[k] for k in getattr(self.pruned, "image_input_names", ()) if k in batch}
        if self.feature_cache is None:
            return self.pruned.vision_features(pixel_values, cls_attention=with_cls, **extra)
        paths = batch["image_paths"]
        entries = [self.feature_cache.get(p) for p in paths]
        missing = [i for i, e in enumerate(entries) if e is None or (with_cls and "cls_attention" not in e)]
        if missing:  # only the missing images go through the tower
            fresh = self.pruned.vision_features(pixel_values[missing], cls_attention=True,
                                                **{k: v[missing] for k, v in extra.items()})
            for i, entry in zip(missing, self.pruned.cache_entries(fresh), strict=True):
                self.feature_cache.put(paths[i], entry)
                entries[i] = entry
        return self.pruned.features_from_cache(entries)

    def _merged_features(self, batch: dict[str, Any]) -> Any:
        from adaptive_svdprune.models.qwen_features import image_pixel_values

        pixel_values, grid = batch["pixel_values"], batch["image_grid_thw"]
        if self.feature_cache is None:
            return self.pruned.vision_features(pixel_values, image_grid_thw=grid)
        paths = batch["image_paths"]
        entries = [self.feature_cache.get(p) for p in paths]
        # an entry made at another resolution (processor pixel bounds changed) is recomputed
        missing = [i for i, e in enumerate(entries)
                   if e is None or "grid_thw" not in e or not torch.equal(e["grid_thw"].cpu(), grid[i].cpu())]
        if missing:  # only the missing images go through the tower
            pixels, rows = image_pixel_values(pixel_values, grid, missing)
            fresh = self.pruned.cache_entries(self.pruned.vision_features(pixels, image_grid_thw=rows))
            for i, entry in zip(missing, fresh, strict=True):
                self.feature_cache.put(paths[i], entry)
                entries[i] = entry
        return self.pruned.features_from_cache(entries)

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
        grids = {"image_grid_thw": batch["image_grid_thw"]} if "image_grid_thw" in batch else {}  # Qwen2-VL
        if batch.get("image_sizes") is not None:  # anyres families: cost depends on each image's size
            grids = {"image_sizes": batch["image_sizes"]}
        pruned = batch_flops(cfg, kept if config.method != "fastv" else full_tokens, text, new_tokens,
                             selection_solver=solver if config.method not in ("none",) else None, **grids)
        unpruned = batch_flops(cfg, full_tokens, text, new_tokens, selection_solver=None, **grids)
        totals = [p.total for p in pruned]
        if config.method == "fastv" and "image_grid_thw" not in grids:
            # FastV: projector and first K layers on every image token, the later layers on the kept ones
            totals = [f.total for f in batch_flops(cfg, kept, text, new_tokens, selection_solver=None,
                                                   fastv_layer=config.fastv_layer, **grids)]
        elif config.method == "fastv":  # Qwen2-VL (merger inside the vision tower): weight by layer count
            fast = batch_flops(cfg, kept, text, new_tokens, selection_solver=None, **grids)
            share = min(1.0, self.pruned.config.fastv_layer / cfg.text_config.num_hidden_layers)
            totals = [f.vision + f.projector + share * (u.llm_prefill + u.decode) + (1 - share) *
                      (f.llm_prefill + f.decode) for f, u in zip(fast, unpruned, strict=True)]
        return [t / 1e12 for t in totals], [u.total / 1e12 for u in unpruned]

    def on_test_start(self) -> None:
        if self.previous and self.global_rank == 0:  # once, not once per rank
            self.metrics.update(self.previous)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        features = self._features(batch)
        start = time.perf_counter()
        answers, new_tokens = self._answers(self.pruned, batch, features)
        latency = (time.perf_counter() - start) / len(answers)
        selection = self.pruned.last_selection
        counts = self.pruned.last_kept_counts
        tflops, tflops_full = self._flops(batch, counts, new_tokens)
        qids = [str(q) for q in batch["question_ids"]]
        reference: list[str | None] = [self.reference_answers.get(q) for q in qids]
        if self.with_fidelity and any(r is None for r in reference):
            reference, _ = self._answers(self.reference, batch, features)  # type: ignore[assignment]
        records = [
            {"question_id": q, "answer": a, "answers": gt, "reference_answer": ref, "kept_tokens": [k],
             "mean_kept_tokens": float(k), "rank": int(selection.rank[i]) if selection is not None else 0,
             "new_tokens": n, "tflops": tf, "tflops_unpruned": tfu, "latency_s": latency, "run": self.run_id}
            for i, (q, a, gt, ref, k, n, tf, tfu) in enumerate(zip(qids, answers, batch["answers"], reference, counts,
                                                                   new_tokens, tflops, tflops_full, strict=True))
        ]
        fresh, mine = first_per_question(_gather(records), self.seen, self.global_rank)
        if self.predictions_path is not None and self.global_rank == 0:
            append_records(self.predictions_path, fresh)
        self.metrics.update(mine)

    def compute_metrics(self) -> dict[str, float | None]:
        """Metric values over everything seen (replayed and new)."""
        return self.metrics.compute()
