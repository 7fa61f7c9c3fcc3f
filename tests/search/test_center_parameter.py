"""``center`` as a searched parameter: the space, the trial, the front table, the profile and its use at inference.

A search that tunes centring must carry the setting all the way to inference: a profile made from a centred trial
that ran uncentred at inference would report a number measured with another setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adaptive_svdprune.commands.pareto import front_rows
from adaptive_svdprune.evaluation import EvalConfig
from adaptive_svdprune.profiles import Profile, TaskProfile, load_profile, save_profile
from adaptive_svdprune.profiles.schema import parse_profile
from adaptive_svdprune.search.space import check_search_space, parse_trial_parameters, search_space
from adaptive_svdprune.search.trial import TrialSettings, eval_config, run_trial, with_parameters
from adaptive_svdprune.tradeoffs.results import TrialResult, trial_from_metric

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_the_space_searches_center_as_a_choice() -> None:
    space = search_space(budgets=(16,), adaptive=False, center=(False, True))
    assert space["center"] == {"_type": "choice", "_value": [False, True]}
    check_search_space(space, tuner="TPE")


@pytest.mark.parametrize(("spec", "tuner", "match"), [
    ({"_type": "choice", "_value": [False, "yes"]}, None, "center must be true or false, got 'yes'"),
    ({"_type": "choice", "_value": [0, 1]}, None, "center must be true or false, got 0"),
    ({"_type": "uniform", "_value": [0, 1]}, None, "center has _type 'uniform'; use choice"),
    ({"_type": "choice", "_value": [False, True]}, "GP", "accepts numeric choices only, but the space searches center"),
])
def test_bad_center_spaces_are_refused(spec: dict[str, Any], tuner: str | None, match: str) -> None:
    space = {"budget": {"_type": "choice", "_value": [16]}, "center": spec}
    with pytest.raises(ValueError, match=match):
        check_search_space(space, tuner=tuner)


def test_trial_parameters_carry_center_only_when_given() -> None:
    assert "center" not in parse_trial_parameters({"budget": 16})
    assert parse_trial_parameters({"budget": 16, "center": True})["center"] is True
    with pytest.raises(ValueError, match="center must be true or false, got 'true'"):
        parse_trial_parameters({"budget": 16, "center": "true"})


def test_the_trial_evaluates_with_the_center_it_was_given(tmp_path: Path) -> None:
    settings = TrialSettings("gqa", str(FIXTURES / "gqa"))
    plain = eval_config({"variance_threshold": 0.8, "budget": 16}, settings)
    centred = eval_config({"variance_threshold": 0.8, "budget": 16, "center": True}, settings)
    assert plain.center is False and centred.center is True and centred.selector_config().center is True
    assert plain.out != centred.out  # the default run folders differ, so neither resumes from the other
    seen: list[EvalConfig] = []

    def fake(cfg: EvalConfig) -> dict[str, float]:
        seen.append(cfg)
        return {"accuracy": 0.5, "tflops_per_sample": 0.1, "tflops_unpruned_per_sample": 1.0,
                "mean_kept_tokens": 16.0}

    params = {"variance_threshold": 0.8, "budget": 16, "center": True}
    final = with_parameters(run_trial(params, TrialSettings("gqa", str(FIXTURES / "gqa"), out=str(tmp_path)),
                                      fake), params, 0)
    assert seen[0].center is True and final["center"] is True
    trial = trial_from_metric("t1", {}, final)
    assert trial.parameters["center"] is True


def test_front_table_shows_center_when_searched() -> None:
    trials = [TrialResult("a", {"variance_threshold": 0.8, "budget": 16, "center": True}, 0.9, 1.0, 16.0),
              TrialResult("b", {"variance_threshold": 0.8, "budget": 16, "center": False}, 0.5, 1.0, 16.0)]
    assert [r["center"] for r in front_rows(trials)] == [True, False]
    assert list(front_rows(trials)[0])[:4] == ["trial", "epsilon", "budget", "center"]
    assert "center" not in front_rows([TrialResult("c", {"variance_threshold": 0.8, "budget": 16}, 0.5, 1.0, 16.0)])[0]


def _profile(tmp_path: Path, center: bool | None) -> Path:
    entry = TaskProfile(variance_threshold=0.8, budget=16, center=center)
    return save_profile(Profile("c", model="tiny", tasks={"gqa": entry}), tmp_path / "p.yaml")


def test_profile_keeps_center_from_the_trial_and_round_trips(tmp_path: Path) -> None:
    entry = TaskProfile.from_trial(TrialResult("t", {"variance_threshold": 0.8, "budget": 16, "center": True},
                                               0.9, 1.0, 16.0))
    assert entry.center is True and entry.config_kwargs()["center"] is True
    path = save_profile(Profile("c", tasks={"gqa": entry}), tmp_path / "p.yaml")
    assert "center: true" in path.read_text()
    assert load_profile(path).task("gqa") == entry and load_profile(path).config_for("gqa").center is True
    unsearched = TaskProfile.from_trial(TrialResult("u", {"variance_threshold": 0.8, "budget": 16}, 0.5, 1.0, 16.0))
    assert unsearched.center is None and "center" not in unsearched.config_kwargs()
    assert "center" not in save_profile(Profile("c", tasks={"gqa": unsearched}), tmp_path / "q.yaml").read_text()
    with pytest.raises(ValueError, match=r"tasks\.gqa\.center must be true or false, got 'yes'"):
        parse_profile({"name": "x", "tasks": {"gqa": {"variance_threshold": 0.9, "budget": 8, "center": "yes"}}})


@pytest.mark.parametrize(("center", "explicit", "expected"), [
    (True, {}, True),                      # the profile fills it
    (True, {"center": False}, False),      # an explicit setting beats the profile
    (None, {}, False),                     # not in the profile: uncentred, as in the paper
])
def test_eval_config_takes_center_from_the_profile(tmp_path: Path, center: bool | None, explicit: dict[str, bool],
                                                   expected: bool) -> None:
    cfg = EvalConfig(profile=str(_profile(tmp_path, center)), wandb=False, **explicit)
    assert (cfg.center, cfg.selector_config().center, cfg.budget) == (expected, expected, 16)


def test_generate_uses_the_profiles_center(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "adaptive_svdprune.cli", "generate", "--model", "tiny",
                           "--profile", str(_profile(tmp_path, True)), "--task", "gqa", "--max-new-tokens", "2",
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["config"]["center"] is True and result["kept_tokens"] == 16
