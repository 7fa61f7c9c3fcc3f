from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_svdprune.evaluation import EvalConfig, read_predictions, run_evaluation

METHODS = [
    pytest.param("svd", 16, id="svd-K16"),
    pytest.param("svd", None, id="svd-adaptive"),
    pytest.param("none", None, id="none"),
    pytest.param("random", 16, id="random"),
    pytest.param("uniform", 16, id="uniform"),
    pytest.param("l2norm", 16, id="l2norm"),
    pytest.param("cls_attention", 16, id="cls_attention"),
    pytest.param("fastv", 16, id="fastv"),
]


def _cfg(tmp_path: Path, **kw: object) -> EvalConfig:
    base = dict(task="gqa", limit=4, batch_size=2, max_new_tokens=2, out=str(tmp_path / "run"), wandb=False,
                fidelity=False, progress_bar=False)
    base.update(kw)
    return EvalConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "budget"), METHODS)
def test_every_method_end_to_end_on_gqa(tmp_path: Path, method: str, budget: int | None) -> None:
    metrics = run_evaluation(_cfg(tmp_path, method=method, budget=budget))
    assert metrics["samples"] == 4 and metrics["protocol"] == "llava-1.5/gqa/testdev-balanced"
    assert 0.0 <= metrics["accuracy"] <= 1.0
    records = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert len(records) == 4 and all(isinstance(r["answer"], str) for r in records)
    if method == "none":
        assert metrics["mean_kept_tokens"] == 576
        assert metrics["tflops_per_sample"] == pytest.approx(metrics["tflops_unpruned_per_sample"])
    elif budget is not None:
        assert metrics["mean_kept_tokens"] == metrics["max_kept_tokens"] == budget
        assert metrics["tflops_per_sample"] < metrics["tflops_unpruned_per_sample"]
    else:
        assert 1 <= metrics["min_kept_tokens"] <= metrics["max_kept_tokens"] <= 576
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"]


def test_textvqa_with_fidelity_and_feature_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_evaluation(_cfg(tmp_path, task="textvqa", budget=32, fidelity=True, feature_cache=str(cache),
                                out=str(tmp_path / "a")))
    assert first["protocol"] == "llava-1.5/textvqa/no-ocr"
    assert 0.0 <= first["fidelity"] <= 1.0
    assert first["feature_cache_hits"] == 0 and any(cache.rglob("*.pt"))
    second = run_evaluation(_cfg(tmp_path, task="textvqa", budget=32, fidelity=True, feature_cache=str(cache),
                                 out=str(tmp_path / "b")))
    assert second["feature_cache_hits"] == 4
    for key in ("accuracy", "fidelity", "mean_kept_tokens", "tflops_per_sample"):
        assert second[key] == first[key]
    # budget >= all tokens: pruned answers are the unpruned ones
    full = run_evaluation(_cfg(tmp_path, task="textvqa", budget=576, fidelity=True, out=str(tmp_path / "c")))
    assert full["fidelity"] == 1.0


def test_resume_after_a_killed_run_loses_and_recomputes_nothing(tmp_path: Path) -> None:
    complete = run_evaluation(_cfg(tmp_path, out=str(tmp_path / "complete")))
    lines = (tmp_path / "complete" / "predictions.jsonl").read_text().splitlines()
    killed = tmp_path / "killed"
    killed.mkdir()
    # two answers written, then the process died in the middle of writing the third
    (killed / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    resumed = run_evaluation(_cfg(tmp_path, out=str(killed)))
    assert resumed["resumed"] == 2
    records = read_predictions(killed / "predictions.jsonl")
    assert [r["question_id"] for r in records] == [json.loads(x)["question_id"] for x in lines]
    assert [r["answer"] for r in records] == [json.loads(x)["answer"] for x in lines]
    for key in ("accuracy", "mean_kept_tokens", "tflops_per_sample", "samples"):
        assert resumed[key] == pytest.approx(complete[key])
    again = run_evaluation(_cfg(tmp_path, out=str(killed)))  # all done: nothing generated
    assert again["resumed"] == 4 and len(read_predictions(killed / "predictions.jsonl")) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"task": "vqav2"}, ValueError, "unknown task 'vqav2'", id="unknown-task"),
        pytest.param({"data": "/nonexistent/gqa"}, FileNotFoundError, "/nonexistent/gqa", id="missing-data"),
        pytest.param({"method": "visionzip"}, ValueError, "unknown method 'visionzip'", id="unknown-method"),
        pytest.param({"budget": 0}, ValueError, "budget must be a positive int", id="bad-budget"),
    ],
)
def test_bad_runs_fail_clearly(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        run_evaluation(_cfg(tmp_path, **kwargs))


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown evaluation config keys \['epsilon'\]"):
        EvalConfig.from_dict({"epsilon": 0.9})


def test_skip_bad_counts_broken_images_and_placeholder_questions_once(tmp_path: Path) -> None:
    import shutil

    data = Path(shutil.copytree(Path(__file__).parent / "fixtures" / "gqa", tmp_path / "gqa"))
    questions = json.loads((data / "testdev_balanced_questions.json").read_text())
    first = next(iter(questions.values()))
    broken_image = first["imageId"]
    (data / "images" / f"{broken_image}.jpg").write_bytes(b"not a jpeg")
    qid = next(q for q, v in questions.items() if v["imageId"] != broken_image)
    questions[qid]["question"] = "What is in <image>?"
    (data / "testdev_balanced_questions.json").write_text(json.dumps(questions))
    bad = {q for q, v in questions.items() if v["imageId"] == broken_image} | {qid}

    with pytest.raises(ValueError, match=f"question {qid} .*'<image>'"):
        run_evaluation(_cfg(tmp_path, data=str(data), limit=None, out=str(tmp_path / "strict")))
    metrics = run_evaluation(_cfg(tmp_path, data=str(data), limit=None, skip_bad=True, max_new_tokens=1,
                                  batch_size=4))
    records = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert metrics["skipped"] == len(bad) and len(records) == metrics["samples"] == len(questions) - len(bad)
    assert {r["question_id"] for r in records} == set(questions) - bad


def test_every_json_written_is_strict(tmp_path: Path) -> None:
    run_evaluation(_cfg(tmp_path, limit=2))

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-strict JSON constant {constant}")

    for name in ("metrics.json", "run.json"):
        json.loads((tmp_path / "run" / name).read_text(), parse_constant=refuse)
    for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=refuse)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["tflops"] == metrics["tflops_per_sample"]  # the search's name next to the old one


def test_strict_json_maps_non_finite_to_null() -> None:
    from adaptive_svdprune.evaluation import strict_json

    assert json.loads(strict_json({"a": float("nan"), "b": [float("inf"), 1.0]})) == {"a": None, "b": [None, 1.0]}


def test_fastv_flops_count_its_first_layers_and_projector_on_every_token(tmp_path: Path) -> None:
    """FastV prunes inside the LLM: its projector and first K layers run on every image token, the later layers
    on the kept ones. Each question's TFLOPs equal that count for its own prompt length."""
    from PIL import Image

    from adaptive_svdprune.data import load_task
    from adaptive_svdprune.data.prompts import build_prompt, format_question
    from adaptive_svdprune.evaluation.runner import _load
    from adaptive_svdprune.flops import batch_flops

    cfg = _cfg(tmp_path, method="fastv", budget=16, limit=2, batch_size=1, max_new_tokens=1)
    fastv = run_evaluation(cfg)
    model, processor = _load(cfg)
    records = {str(r["question_id"]): r for r in read_predictions(tmp_path / "run" / "predictions.jsonl")}
    for sample in load_task("gqa", cfg.data_dir(), limit=2).samples:
        inputs = processor(images=Image.open(sample.image_path).convert("RGB"),
                           text=build_prompt(processor, format_question(sample.question)), return_tensors="pt")
        text = int((inputs["input_ids"] != model.config.image_token_id).sum())
        [expected] = batch_flops(model.config, [16], [text], 1, selection_solver=None, fastv_layer=cfg.fastv_layer)
        [pre_projector] = batch_flops(model.config, [16], [text], 1, selection_solver=None)
        assert records[sample.question_id]["tflops"] == pytest.approx(expected.total / 1e12, rel=1e-9)
        assert expected.projector > pre_projector.projector  # the projector saw all 576 tokens
    assert fastv["tflops"] < fastv["tflops_unpruned_per_sample"]
