"""``adaptive-svdprune demo``: a short run end to end on the shapes reference model (real NNI manager, two trials,
a small comparison), and its input checks. ``make demo`` runs the full budget (12 trials per task)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_svdprune.cli import main
from adaptive_svdprune.profiles import load_profile


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--tasks", " , "], "--tasks names no task"), (["--trials", "0"], "--trials must be >= 1, got 0"),
     (["--tasks", "vqav2"], "the shapes world has no task ['vqav2']"),
     (["--tasks", "vqav2", "--data-root", "."], "no data for ['vqav2'] under --data-root"),
     (["--questions", "0"], "--questions must be >= 1, got 0"),
     (["--compare-budgets", "16,x"], "--compare-budgets must be a comma-separated list of int")],
    ids=["no-task", "no-trials", "unknown-task", "no-data", "no-questions", "bad-budgets"],
)
def test_demo_rejects_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_demo_short_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    # a private HOME keeps NNI's experiment manifest out of ~/nni-experiments
    env.update(HOME=str(tmp_path / "home"), WANDB_MODE="disabled")
    out, profile = tmp_path / "demo", tmp_path / "profiles" / "demo.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "adaptive_svdprune.cli", "demo", "--tasks", "gqa", "--trials", "2", "--concurrency",
         "1", "--questions", "8", "--compare-methods", "svd,random", "--compare-budgets", "16,576", "--out", str(out),
         "--profile", str(profile), "--no-wandb", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["model"] == "shapes"
    gqa = summary["tasks"]["gqa"]
    assert gqa["status"] == "DONE" and gqa["n_trials"] == 2 and gqa["failed"] == 0
    assert Path(gqa["files"]["png"]).is_file() and Path(gqa["files"]["results"]).is_file()
    assert (out / "demo.json").is_file() and (out / "nni" / gqa["experiment"]).is_dir()
    assert (out / "data" / "gqa" / "objects.json").is_file()
    # the profile holds a searched setting on the front, and generate ran with it (and drew the overlay)
    entry = load_profile(profile).task("gqa")
    assert entry.trial_id in {t["trial_id"] for t in gqa["front"]} and entry.experiment == gqa["experiment"]
    generated = summary["generate"]
    assert f"--profile {profile}" in generated["command"] and (out / "overlay.png").is_file()
    assert generated["config"]["variance_threshold"] == entry.variance_threshold
    assert generated["config"]["budget"] == entry.budget
    if entry.budget is not None:
        assert generated["kept_tokens"] == entry.budget
    # the comparison ran both methods at 16 tokens, and the unpruned model once
    comparison = summary["comparison"]["gqa"]
    assert [(r["method"], r["budget"]) for r in comparison["rows"]] == [("svd", 16), ("random", 16)]
    assert comparison["unpruned"]["kept_tokens"] == 576 and comparison["unpruned"]["fidelity"] == 1.0
    assert all(0.0 <= r["object_recall"] <= 1.0 for r in comparison["rows"])
    assert Path(comparison["files"]["png"]).is_file()
    for step in ("[1/6]", "[3/6] gqa: NNI experiment", "NNI manager stopped", "[5/6] generate with the profile",
                 "[6/6] method comparison"):
        assert step in proc.stderr
