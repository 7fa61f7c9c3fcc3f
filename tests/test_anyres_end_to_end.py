"""LLaVA-NeXT and OneVision end to end on their tiny checkpoints: generate CLI, evaluation, a 2-trial search."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FAMILIES = ["tiny-next", "tiny-onevision"]


def _env(tmp_path: Path) -> dict[str, str]:
    from adaptive_svdprune.models.tiny_next import tiny_next_path, tiny_onevision_path

    cache_root = tiny_next_path().parent  # the built checkpoints, although HOME moves below
    tiny_onevision_path()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(HOME=str(tmp_path / "home"), ADAPTIVE_SVDPRUNE_CACHE=str(cache_root), WANDB_MODE="disabled",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return env


@pytest.mark.parametrize("model", FAMILIES)
def test_generate_command(model: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "adaptive_svdprune.cli", "generate", "--model", model, "--budget",
                           "48", "--max-new-tokens", "3", "--json"], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kept_tokens"] == 48 and result["image_tokens"] > 48 and result["answer"]


@pytest.mark.parametrize("model", FAMILIES)
def test_evaluation_end_to_end(model: str, tmp_path: Path) -> None:
    from adaptive_svdprune.evaluation import EvalConfig, run_evaluation

    for run in ("a", "b"):  # the second run reads the feature cache the first one wrote
        cfg = EvalConfig(model=model, task="gqa", data=str(FIXTURES / "gqa"), limit=2, batch_size=2,
                         max_new_tokens=2, out=str(tmp_path / run), wandb=False, fidelity=True, progress_bar=False,
                         feature_cache=str(tmp_path / "cache"), method="svd", budget=64)
        metrics = run_evaluation(cfg)
        assert metrics["samples"] == 2 and metrics["mean_kept_tokens"] == 64.0
        assert 0 < metrics["tflops_per_sample"] < metrics["tflops_unpruned_per_sample"]
        assert 0.0 <= metrics["fidelity"] <= 1.0
    assert metrics["feature_cache_hits"] >= 2


@pytest.mark.parametrize("model", FAMILIES)
def test_two_trial_search(model: str, tmp_path: Path) -> None:
    space = {"variance_threshold": {"_type": "choice", "_value": [0.9]},
             "budget": {"_type": "choice", "_value": [24, 96]}}
    (tmp_path / "space.json").write_text(json.dumps(space))
    command = shlex.join([sys.executable, "-m", "adaptive_svdprune.search.trial", "--model", model, "--task", "gqa",
                          "--data", str(FIXTURES / "gqa"), "--limit", "2", "--batch-size", "2",
                          "--max-new-tokens", "2", "--feature-cache", str(tmp_path / "cache")])
    experiment = {"experimentName": f"test-{model}", "searchSpaceFile": "space.json", "trialCommand": command,
                  "trialCodeDirectory": str(ROOT), "trialConcurrency": 1, "maxTrialNumber": 2,
                  "maxTrialDuration": "5m", "tuner": {"name": "GridSearch"},
                  "trainingService": {"platform": "local", "useActiveGpu": False}}
    (tmp_path / "exp.yml").write_text(yaml.safe_dump(experiment))
    proc = subprocess.run(
        [sys.executable, "-m", "adaptive_svdprune.cli", "search", "--config", str(tmp_path / "exp.yml"), "--nni-dir",
         str(tmp_path / "nni"), "--out", str(tmp_path / "out"), "--timeout", "400", "--no-wandb", "--json"],
        capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=480,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(proc.stdout)
    assert document["status"] == "DONE" and document["n_trials"] == 2
    assert sorted(t["mean_kept_tokens"] for t in document["trials"]) == [24.0, 96.0]
    assert document["front"]
