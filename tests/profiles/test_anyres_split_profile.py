"""A LLaVA-NeXT/OneVision search that tuned ``anyres_split`` writes it into the profile, and eval/generate use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_svdprune.evaluation import EvalConfig
from adaptive_svdprune.models.anyres import SPLITS
from adaptive_svdprune.profiles import Profile, TaskProfile, load_profile, save_profile
from adaptive_svdprune.profiles.schema import ANYRES_SPLITS, parse_profile
from adaptive_svdprune.tradeoffs.results import TrialResult


def _profile(tmp_path: Path, split: str | None) -> Path:
    entry = TaskProfile(variance_threshold=0.8, budget=48, anyres_split=split)
    return save_profile(Profile("next", model="tiny-next", tasks={"gqa": entry}), tmp_path / "p.yaml")


def test_schema_values_equal_the_wrappers() -> None:
    assert ANYRES_SPLITS == SPLITS


def test_from_trial_keeps_the_split_and_the_file_round_trips(tmp_path: Path) -> None:
    trial = TrialResult("t", {"variance_threshold": 0.8, "budget": 48, "anyres_split": "per_view"}, 0.5, 1.0, 48.0)
    entry = TaskProfile.from_trial(trial)
    assert entry.anyres_split == "per_view"
    path = save_profile(Profile("next", tasks={"gqa": entry}), tmp_path / "p.yaml")
    assert "anyres_split: per_view" in path.read_text()
    assert load_profile(path).task("gqa") == entry
    no_split = TaskProfile.from_trial(TrialResult("u", {"variance_threshold": 0.8, "budget": 48}, 0.5, 1.0, 48.0))
    assert no_split.anyres_split is None and "anyres_split" not in save_profile(
        Profile("x", tasks={"gqa": no_split}), tmp_path / "q.yaml").read_text()


def test_a_bad_split_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"tasks\.gqa\.anyres_split must be one of .*'per-view'"):
        parse_profile({"name": "x", "tasks": {"gqa": {"variance_threshold": 0.9, "budget": 8,
                                                      "anyres_split": "per-view"}}})


@pytest.mark.parametrize(("split", "explicit", "expected"), [
    ("per_view", {}, "per_view"),                           # the profile fills it
    ("per_view", {"anyres_split": "global"}, "global"),     # an explicit setting beats the profile
    (None, {}, "global"),                                   # not in the profile: the default
])
def test_eval_config_takes_the_split_from_the_profile(tmp_path: Path, split: str | None, explicit: dict[str, str],
                                                      expected: str) -> None:
    cfg = EvalConfig(model="tiny-next", profile=str(_profile(tmp_path, split)), wandb=False, **explicit)
    assert (cfg.anyres_split, cfg.budget, cfg.variance_threshold) == (expected, 48, 0.8)


@pytest.mark.parametrize(("flags", "expected"), [([], "per_view"), (["--anyres-split", "global"], "global")])
def test_generate_uses_the_profiles_split(tmp_path: Path, flags: list[str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "adaptive_svdprune.cli", "generate", "--model", "tiny-next",
                           "--profile", str(_profile(tmp_path, "per_view")), "--task", "gqa", "--max-new-tokens", "2",
                           "--json", *flags], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["anyres_split"] == expected and result["kept_tokens"] == 48
