"""``adaptive-svdprune demo``: a one-task, one-trial run end to end (real NNI manager), and its input checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_svdprune.cli import main
from adaptive_svdprune.models.tiny import tiny_llava_path
from adaptive_svdprune.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--tasks", " , "], "--tasks names no task"), (["--trials", "0"], "--trials must be >= 1, got 0"),
     (["--tasks", "vqav2"], "no data for ['vqav2'] under --data-root")],
    ids=["no-task", "no-trials", "unknown-task"],
)
def test_demo_rejects_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_demo_one_task(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    # a private HOME keeps NNI's experiment manifest out of ~/nni-experiments; reuse the built tiny checkpoint
    env.update(HOME=str(tmp_path / "home"), ADAPTIVE_SVDPRUNE_CACHE=str(tiny_llava_path().parent),
               WANDB_MODE="disabled")
    out, profile = tmp_path / "demo", tmp_path / "profiles" / "demo.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "adaptive_svdprune.cli", "demo", "--tasks", "gqa", "--trials", "1", "--concurrency",
         "1", "--limit", "2", "--out", str(out), "--profile", str(profile), "--no-wandb", "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    gqa = summary["tasks"]["gqa"]
    assert gqa["status"] == "DONE" and gqa["n_trials"] == 1 and gqa["failed"] == 0
    assert Path(gqa["files"]["png"]).is_file() and Path(gqa["files"]["results"]).is_file()
    assert (out / "demo.json").is_file() and (out / "nni" / gqa["experiment"]).is_dir()
    # the profile holds the searched setting, and generate ran with it
    entry = load_profile(profile).task("gqa")
    assert entry.trial_id == gqa["front"][0]["trial_id"] and entry.experiment == gqa["experiment"]
    generated = summary["generate"]
    assert f"--profile {profile}" in generated["command"]
    assert generated["config"]["variance_threshold"] == entry.variance_threshold
    assert generated["config"]["budget"] == entry.budget
    if entry.budget is not None:
        assert generated["kept_tokens"] == entry.budget
    for step in ("[1/4]", "[2/4] gqa: NNI experiment", "NNI manager stopped", "[4/4] generate with the profile"):
        assert step in proc.stderr
