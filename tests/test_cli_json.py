"""``--json`` prints JSON alone on stdout; logs, warnings, W&B lines and progress bars go to stderr.

Every command with ``--json`` runs as a real process (so a library printing to stdout would be caught) with
W&B in offline mode (it prints banners); stdout must parse with ``json.loads`` as a whole. ``search`` and
``demo`` are covered the same way by their real-run tests (tests/search/test_experiment.py,
tests/test_cli_demo.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_svdprune.assets import demo_image_path
from adaptive_svdprune.models.tiny import tiny_llava_path
from adaptive_svdprune.resources import fixtures_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = [
    {"trial_id": f"t{i}", "parameters": {"variance_threshold": 0.9, "budget": b}, "accuracy": a, "tflops": f,
     "mean_kept_tokens": float(b), "objective": 0.1}
    for i, (b, a, f) in enumerate([(16, 0.5, 1.0), (32, 0.6, 2.0), (64, 0.55, 3.0)])
]

COMMANDS: dict[str, list[str]] = {
    "generate": ["generate", "--max-new-tokens", "2", "--budget", "16", "--image", str(demo_image_path("scene")),
                 "--save-overlay", "{tmp}/kept.png"],
    "flops": ["flops", "--tokens", "576,16"],
    "eval": ["eval", "--model", "tiny", "--task", "gqa", "--data", str(fixtures_dir("gqa")), "--limit", "2",
             "--batch-size", "2", "--max-new-tokens", "2", "--budget", "16", "--out", "{tmp}/eval"],
    "pareto": ["pareto", "--results", "{tmp}/results.json", "--out", "{tmp}/pareto", "--task", "gqa"],
    "profile": ["profile", "--results", "{tmp}/results.json", "--task", "gqa", "--name", "edge", "--max-tflops",
                "2.5", "--out", "{tmp}/edge.yaml"],
}


@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_json_alone_on_stdout(command: str, tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb"), "HF_HUB_OFFLINE": "1",
           "ADAPTIVE_SVDPRUNE_CACHE": str(tiny_llava_path().parent), "WANDB_SILENT": "false", "OMP_NUM_THREADS": "1"}
    argv = [word.format(tmp=tmp_path) for word in COMMANDS[command]]
    proc = subprocess.run([sys.executable, "-m", "adaptive_svdprune.cli", *argv, "--json"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert document
    json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
