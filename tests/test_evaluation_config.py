"""EvalConfig: type checks naming key and value, explicit settings beat a profile, accelerator, W&B runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from adaptive_svdprune.cli import build_parser
from adaptive_svdprune.commands.evaluate import build_config
from adaptive_svdprune.evaluation import EvalConfig, run_evaluation
from adaptive_svdprune.evaluation.runner import _loggers
from adaptive_svdprune.profiles import Profile, TaskProfile, save_profile

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        pytest.param({"fidelity": "no"}, TypeError, r"fidelity must be a bool .*'no' \(str\)", id="fidelity-str"),
        pytest.param({"max_new_tokens": "four"}, TypeError, r"max_new_tokens must be an int, got 'four'",
                     id="max-new-tokens-str"),
        pytest.param({"max_new_tokens": 0}, ValueError, "max_new_tokens must be a positive int, got 0", id="zero"),
        pytest.param({"batch_size": 2.5}, TypeError, r"batch_size must be an int, got 2.5", id="batch-float"),
        pytest.param({"limit": True}, TypeError, r"limit must be an int or null, got True", id="limit-bool"),
        pytest.param({"devices": 0}, ValueError, r"devices must be .* got 0", id="devices-0"),
        pytest.param({"devices": "two"}, ValueError, r"devices must be .* got 'two'", id="devices-word"),
        pytest.param({"dtype": "float8"}, ValueError, r"dtype must be one of .* got 'float8'", id="dtype"),
        pytest.param({"precision": "bogus"}, ValueError, r"precision must be one of .* got 'bogus'", id="precision"),
        pytest.param({"num_workers": -1}, ValueError, r"num_workers must be an int >= 0, got -1", id="workers"),
        pytest.param({"variance_threshold": "0.9"}, TypeError, r"variance_threshold must be a number", id="eps-str"),
        pytest.param({"variance_threshold": 1.5}, ValueError, r"variance_threshold must be in \(0, 1\], got 1.5",
                     id="eps-range"),
        pytest.param({"budget": "16"}, TypeError, r"budget must be an int or null, got '16'", id="budget-str"),
        pytest.param({"solver": "qr"}, ValueError, r"solver must be one of .* got 'qr'", id="solver"),
        pytest.param({"accelerator": "quantum"}, ValueError, r"accelerator must be one of .*'quantum'", id="acc"),
        pytest.param({"wandb": 1}, TypeError, r"wandb must be a bool .* got 1 \(int\)", id="wandb-int"),
    ],
)
def test_config_values_are_type_checked(data: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        EvalConfig.from_dict(data)


@pytest.mark.parametrize(
    ("data", "key", "value"),
    [
        pytest.param({"devices": "2"}, "devices", 2, id="devices-digit-string"),
        pytest.param({"devices": "auto"}, "devices", "auto", id="devices-auto"),
        pytest.param({"precision": 32}, "precision", "32", id="precision-int"),
        pytest.param({"out": Path("x")}, "out", "x", id="path-out"),
        pytest.param({"num_workers": 2, "dtype": "bfloat16"}, "num_workers", 2, id="workers"),
    ],
)
def test_config_accepts_valid_values(data: dict, key: str, value: object) -> None:
    assert getattr(EvalConfig.from_dict(data), key) == value


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "edge.yaml"
    save_profile(Profile("edge", tasks={"gqa": TaskProfile(variance_threshold=0.8, budget=32, max_tokens=100)}), path)
    return path


@pytest.mark.parametrize(
    ("explicit", "expected"),
    [
        pytest.param({}, {"variance_threshold": 0.8, "budget": 32, "max_tokens": 100}, id="profile-only"),
        pytest.param({"budget": 64}, {"variance_threshold": 0.8, "budget": 64}, id="budget-beats-profile"),
        pytest.param({"budget": None}, {"budget": None, "variance_threshold": 0.8}, id="adaptive-beats-profile"),
        pytest.param({"variance_threshold": 0.7}, {"variance_threshold": 0.7, "budget": 32}, id="eps-beats-profile"),
    ],
)
def test_explicit_settings_beat_the_profile(profile: Path, explicit: dict, expected: dict) -> None:
    selector = EvalConfig(profile=str(profile), **explicit).selector_config()
    assert {k: getattr(selector, k) for k in expected} == expected


def test_profile_with_a_baseline_is_refused(profile: Path) -> None:
    with pytest.raises(ValueError, match="cannot be combined with method 'l2norm'"):
        EvalConfig(profile=str(profile), method="l2norm")


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["eval", *argv])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param([], {"budget": 16, "variance_threshold": 0.9}, id="file-budget-kept"),
        pytest.param(["--budget", "adaptive"], {"budget": None}, id="flag-adaptive"),
        pytest.param(["--profile", "{profile}"], {"budget": 32, "variance_threshold": 0.8}, id="profile-beats-file"),
        pytest.param(["--profile", "{profile}", "--budget", "64"], {"budget": 64, "variance_threshold": 0.8},
                     id="budget-flag-beats-profile"),
        pytest.param(["--profile", "{profile}", "--variance-threshold", "0.7"],
                     {"budget": 32, "variance_threshold": 0.7}, id="eps-flag-beats-profile"),
        pytest.param(["--precision", "bf16-mixed", "--num-workers", "2", "--dtype", "float16"],
                     {"precision": "bf16-mixed", "num_workers": 2, "dtype": "float16"}, id="trainer-controls"),
        pytest.param(["--overwrite"], {"overwrite": True}, id="overwrite"),
    ],
)
def test_command_line_precedence(profile: Path, argv: list[str], expected: dict) -> None:
    argv = [a.replace("{profile}", str(profile)) for a in argv]
    cfg = build_config(_args("--config", str(ROOT / "configs" / "tiny-gqa.yaml"), *argv))
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_command_line_without_config_uses_defaults() -> None:
    cfg = build_config(_args())
    assert cfg.budget == 64 and cfg.variance_threshold == 0.9


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        pytest.param(["--devices", "0"], r"devices must be .* got '0'", id="devices-0"),
        pytest.param(["--max-new-tokens", "0"], "max_new_tokens must be a positive int, got 0", id="mnt-0"),
        pytest.param(["--device", "tpu9"], r"accelerator must be one of .*'tpu9'", id="device-unknown"),
    ],
)
def test_command_line_values_are_checked(argv: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_config(_args(*argv))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_eval_device_cuda_without_cuda_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adaptive_svdprune.cli import main

    assert main(["eval", "--device", "cuda", "--out", str(tmp_path / "o"), "--no-wandb", "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "accelerator 'cuda' needs CUDA" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "accelerator", [pytest.param("gpu", id="accelerator-gpu"), pytest.param("cuda", id="accelerator-cuda")]
)
def test_a_gpu_without_cuda_is_one_clear_error(tmp_path: Path, accelerator: str) -> None:
    with pytest.raises(ValueError, match=f"accelerator '{accelerator}' needs CUDA"):
        run_evaluation(EvalConfig(accelerator=accelerator, out=str(tmp_path / "o"), wandb=False, limit=1))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("mode", "offline"),
    [
        pytest.param(None, True, id="unset-offline"),
        pytest.param("online", False, id="online-respected"),
        pytest.param("offline", False, id="offline-env"),
    ],
)
def test_wandb_runs_are_grouped_tagged_and_respect_wandb_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: Path, mode: str | None, offline: bool
) -> None:
    if mode is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", mode)
    monkeypatch.delenv("NNI_EXP_ID", raising=False)
    cfg = EvalConfig(profile=str(profile), out=str(tmp_path / "run-a"))
    loggers = _loggers(cfg, tmp_path / "run-a", cfg.selector_config())
    wandb_logger = next(lg for lg in loggers if type(lg).__name__ == "WandbLogger")
    init = wandb_logger._wandb_init
    assert wandb_logger._offline is offline  # WandbLogger(offline=False) leaves the mode to WANDB_MODE
    assert init["group"] == "edge" and init["job_type"] == "eval"
    assert init["tags"] == ["gqa", "tiny", "svd"]
    assert init["config"]["model"] == "tiny" and init["config"]["task"] == "gqa"


def test_wandb_group_defaults_to_the_out_folder_and_disabled_means_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("NNI_EXP_ID", raising=False)
    cfg = EvalConfig(out=str(tmp_path / "my-run"))
    (logger,) = [lg for lg in _loggers(cfg, tmp_path / "my-run", cfg.selector_config()) if hasattr(lg, "_wandb_init")]
    assert logger._wandb_init["group"] == "my-run"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert [type(lg).__name__ for lg in _loggers(cfg, tmp_path / "my-run", cfg.selector_config())] == ["CSVLogger"]
