from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_svdprune.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_eval_command_with_config_and_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--config", str(ROOT / "configs" / "tiny-gqa.yaml"), "--data",
                 str(ROOT / "tests" / "fixtures" / "gqa"), "--method", "l2norm", "--budget", "32", "--limit", "2",
                 "--max-new-tokens", "2", "--out", str(tmp_path / "out"), "--no-wandb", "--no-fidelity", "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["method"] == "l2norm" and metrics["mean_kept_tokens"] == 32 and metrics["samples"] == 2
    assert (tmp_path / "out" / "metrics.json").exists()


def test_eval_command_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("epsilon: 0.9\n")
    assert main(["eval", "--config", str(bad)]) == 2
    assert "unknown evaluation config keys ['epsilon']" in capsys.readouterr().err
    assert main(["eval", "--task", "coco", "--out", str(tmp_path / "o"), "--no-wandb"]) == 2
    assert "unknown task 'coco'" in capsys.readouterr().err
