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
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("epsilon: 0.9\n")
    assert main(["eval", "--config", str(bad)]) == 2
    assert "unknown evaluation config keys ['epsilon']" in capsys.readouterr().err
    assert main(["eval", "--task", "coco", "--out", str(tmp_path / "o"), "--no-wandb"]) == 2
    assert "unknown task 'coco'" in capsys.readouterr().err


def test_eval_refuses_to_resume_with_other_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["eval", "--config", str(ROOT / "configs" / "tiny-gqa.yaml"), "--data", str(ROOT / "tests" / "fixtures" /
              "gqa"), "--limit", "2", "--max-new-tokens", "1", "--out", str(tmp_path / "out"), "--no-wandb",
              "--no-fidelity", "--json"]
    assert main(common) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*common, "--method", "l2norm", "--budget", "32"]) == 2
    err = capsys.readouterr().err
    assert "selector.budget 16 -> 32" in err and "selector.method 'svd' -> 'l2norm'" in err and "--overwrite" in err
    assert main([*common, "--method", "l2norm", "--budget", "32", "--overwrite"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["mean_kept_tokens"], second["mean_kept_tokens"]) == (16, 32)
    assert second["tflops"] != first["tflops"] and second["resumed"] == 0


def test_eval_help_documents_precedence_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert "precedence:" in text and "resume:" in text and "--overwrite" in text


def test_eval_config_by_packaged_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptive_svdprune.cli import build_parser
    from adaptive_svdprune.commands.evaluate import build_config

    monkeypatch.chdir(tmp_path)  # outside the checkout: the packaged config and fixtures are found by name
    cfg = build_config(build_parser().parse_args(["eval", "--config", "tiny-gqa"]))
    assert cfg.budget == 16 and cfg.data_dir().is_dir()
