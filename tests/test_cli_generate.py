"""``adaptive-svdprune generate`` on the cached tiny model, run in-process through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptive_svdprune.assets import demo_image_path
from adaptive_svdprune.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["generate", "--max-new-tokens", "3", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_budget_json_and_overlay(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    overlay = tmp_path / "sub" / "kept.png"
    scene = str(demo_image_path("scene"))
    result = _run_json(capsys, "--budget", "16", "--save-overlay", str(overlay), "--image", scene)
    assert result["kept_tokens"] == 16 and result["image_tokens"] == 576
    assert result["config"] == {"method": "svd", "variance_threshold": 0.9, "budget": 16, "min_tokens": 1,
                                "max_tokens": None, "solver": "auto", "center": False}
    assert isinstance(result["answer"], str) and result["overlay"] == str(overlay)
    image = Image.open(overlay).convert("RGB")
    assert image.size == (336, 336)
    original = Image.open(demo_image_path("scene")).convert("RGB")
    changed = (np.asarray(image) != np.asarray(original)).any(-1).mean()
    assert changed > 0.9  # 560 of 576 patches are shaded


def test_adaptive_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--variance-threshold", "0.5", "--max-new-tokens", "2", "--question", "Colors?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("answer:")
    kept_line = next(line for line in out.splitlines() if line.startswith("kept tokens: "))
    kept, slash, total = kept_line.split()[2:5]
    assert slash == "/" and total == "576" and 1 <= int(kept) < 576


@pytest.mark.parametrize(("method", "kept"), [("uniform", 9), ("fastv", 9), ("none", 576)])
def test_baselines(capsys: pytest.CaptureFixture[str], method: str, kept: int) -> None:
    extra = [] if method == "none" else ["--budget", str(kept)]
    result = _run_json(capsys, "--method", method, *extra)
    assert result["kept_tokens"] == kept and result["config"]["method"] == method


def test_profile_and_task(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from adaptive_svdprune.profiles import Profile, TaskProfile, save_profile

    profile = Profile("edge", model="tiny", tasks={"gqa": TaskProfile(variance_threshold=0.7, budget=12)})
    path = save_profile(profile, tmp_path / "edge.yaml")
    assert _run_json(capsys, "--profile", str(path), "--task", "gqa")["kept_tokens"] == 12
    assert _run_json(capsys, "--profile", str(path), "--task", "gqa", "--budget", "5")["kept_tokens"] == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "uniform"], "--method uniform needs --budget K"),
        (["--image", "no/such.png"], "does not exist"),
        (["--profile", "p.yaml"], "--profile and --task go together"),
        (["--budget", "0"], "budget must be a positive int"),
        (["--variance-threshold", "1.5"], "variance_threshold must be in (0, 1]"),
        (["--method", "l2norm", "--budget", "4", "--variance-threshold", "0.5"], "SVD-Prune only"),
    ],
    ids=["baseline-without-budget", "missing-image", "profile-without-task", "zero-budget", "bad-eps", "eps-baseline"],
)
def test_user_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["generate", *argv]) == 2
    assert message in capsys.readouterr().err


def test_16_bit_image_is_not_white(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A 16-bit grey PNG reaches the model as mid grey (``convert("RGB")`` alone clips it to white)."""
    grey = np.full((336, 336), 32896, dtype=np.uint16)  # 50% grey in 16 bits
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I")
    overlay = tmp_path / "view.png"
    _run_json(capsys, "--budget", "576", "--image", str(path), "--save-overlay", str(overlay))
    view = np.asarray(Image.open(overlay).convert("RGB"), dtype=float)
    assert 100 < view.mean() < 160  # grey, not 255
