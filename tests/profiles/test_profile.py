"""Deployment profiles: YAML schema, merging, per-task lookup and SVDPruneConfig integration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from adaptive_svdprune.profiles import Profile, TaskProfile, config_kwargs_for, load_profile, save_profile
from adaptive_svdprune.profiles.schema import TASK_KEYS, parse_profile
from adaptive_svdprune.tradeoffs.results import TrialResult


def test_task_keys_match_dataclass() -> None:
    assert tuple(f.name for f in dataclasses.fields(TaskProfile)) == TASK_KEYS


def test_task_profile_from_trial() -> None:
    trial = TrialResult("x", {"variance_threshold": 0.8, "budget": "adaptive", "max_tokens": 128}, 0.6, 1.1, 90.0)
    entry = TaskProfile.from_trial(trial, "max_tflops<=1.2", "exp1")
    assert entry.config_kwargs() == {"variance_threshold": 0.8, "budget": None, "max_tokens": 128}
    assert (entry.trial_id, entry.experiment, entry.constraint, entry.tflops) == ("x", "exp1", "max_tflops<=1.2", 1.1)
    with pytest.raises(ValueError, match="trial y has no variance_threshold"):
        TaskProfile.from_trial(TrialResult("y", {"budget": 8}, 0.5, 1.0, 8.0))


def make_profile(task: str = "gqa", model: str | None = "llava-tiny", **entry: Any) -> Profile:
    values = {"variance_threshold": 0.9, "budget": 64, "accuracy": 0.6, "tflops": 1.1, **entry}
    return Profile("edge", model=model, deployment="Orin", experiments=["e1"], tasks={task: TaskProfile(**values)})


def test_save_load_round_trip(tmp_path: Path) -> None:
    profile = make_profile(min_tokens=8, max_tokens=128, trial_id="AbC", constraint="max_tflops<=1.2")
    path = save_profile(profile, tmp_path / "profiles" / "edge.yaml")
    text = path.read_text()
    assert text.startswith("# adaptive-svdprune deployment profile")
    assert "mean_kept_tokens" not in yaml.safe_load(text)["tasks"]["gqa"]  # unset fields are left out
    assert load_profile(path) == profile
    assert not list(path.parent.glob("*.tmp"))


def test_adaptive_budget_is_written_as_null(tmp_path: Path) -> None:
    path = save_profile(make_profile(budget=None), tmp_path / "p.yaml")
    assert yaml.safe_load(path.read_text())["tasks"]["gqa"]["budget"] is None
    assert config_kwargs_for(load_profile(path), "gqa") == {"variance_threshold": 0.9, "budget": None}


def test_merge_keeps_other_tasks(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    save_profile(make_profile("gqa"), path)
    save_profile(make_profile("textvqa", budget=32), path)
    save_profile(make_profile("gqa", budget=16), path)
    loaded = load_profile(path)
    assert sorted(loaded.tasks) == ["gqa", "textvqa"]
    assert loaded.tasks["gqa"].budget == 16 and loaded.tasks["textvqa"].budget == 32
    assert loaded.experiments == ["e1"]
    save_profile(make_profile("gqa", budget=8), path, merge=False)
    assert list(load_profile(path).tasks) == ["gqa"]


def test_merge_refuses_other_model(tmp_path: Path) -> None:
    path = save_profile(make_profile("gqa"), tmp_path / "edge.yaml")
    with pytest.raises(ValueError, match="for model 'llava-tiny', not 'llava-13b'"):
        save_profile(make_profile("textvqa", model="llava-13b"), path)


def test_missing_task_names_the_tasks(tmp_path: Path) -> None:
    profile = make_profile("gqa")
    with pytest.raises(ValueError, match="profile 'edge' has no task 'pope'; it has \\['gqa'\\]"):
        config_kwargs_for(profile, "pope")


GOOD = {"name": "edge", "tasks": {"gqa": {"variance_threshold": 0.9, "budget": 64}}}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1, 2], "expected a mapping at the top level, got list"),
        ({**GOOD, "nmae": "x"}, "unknown key 'nmae'"),
        ({"tasks": GOOD["tasks"]}, "missing key 'name'"),
        ({"name": "edge"}, "missing key 'tasks'"),
        ({**GOOD, "version": 2}, "unsupported version 2"),
        ({**GOOD, "tasks": {}}, "tasks must be a non-empty mapping"),
        ({**GOOD, "tasks": {"gqa": 0.9}}, "tasks.gqa must be a mapping, got 0.9"),
        ({**GOOD, "tasks": {"gqa": {"budget": 64}}}, "missing key 'tasks.gqa.variance_threshold'"),
        ({**GOOD, "tasks": {"gqa": {"variance_threshold": 0.9}}}, "missing key 'tasks.gqa.budget'"),
        (
            {**GOOD, "tasks": {"gqa": {"variance_threshold": 1.5, "budget": 4}}},
            "variance_threshold must be in \\(0, 1\\]",
        ),
        ({**GOOD, "tasks": {"gqa": {"variance_threshold": 0.9, "budget": 0}}}, "tasks.gqa.budget must be a positive"),
        (
            {**GOOD, "tasks": {"gqa": {"variance_threshold": 0.9, "budget": None, "min_tokens": 9, "max_tokens": 4}}},
            "min_tokens must be <= max_tokens, got 9 > 4",
        ),
        (
            {**GOOD, "tasks": {"gqa": {"variance_threshold": 0.9, "budget": 4, "accuracy": "high"}}},
            "tasks.gqa.accuracy must be a number or null, got 'high'",
        ),
        ({**GOOD, "experiments": {"a": 1}}, "experiments must be a list"),
    ],
    ids=[
        "not-mapping",
        "unknown-top",
        "no-name",
        "no-tasks",
        "version",
        "empty-tasks",
        "task-not-mapping",
        "no-epsilon",
        "no-budget",
        "bad-epsilon",
        "bad-budget",
        "min>max",
        "bad-accuracy",
        "bad-experiments",
    ],
)
def test_schema_errors_name_the_key(tmp_path: Path, data: Any, match: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=match) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_hand_written_yaml_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "hand.yaml"
    path.write_text(
        "name: lab\ncreated: 2026-01-31\nexperiments: abc\n"
        "tasks:\n  gqa: {variance_threshold: 1, budget: adaptive, trial_id: 17}\n"
    )
    profile = load_profile(path)
    assert profile.created == "2026-01-31" and profile.experiments == ["abc"]
    assert profile.tasks["gqa"] == TaskProfile(variance_threshold=1.0, budget=None, trial_id="17")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"profile not found: .*absent\.yaml"):
        load_profile(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: malformed YAML"):
        load_profile(tmp_path / "bad.yaml")


def test_parse_profile_defaults() -> None:
    meta, tasks = parse_profile(GOOD)
    assert meta == {"name": "edge", "model": None, "deployment": None, "experiments": []}
    assert tasks["gqa"]["min_tokens"] is None


def test_config_for_task(tmp_path: Path) -> None:
    from adaptive_svdprune.pruning.config import SVDPruneConfig

    path = save_profile(make_profile(budget=None, min_tokens=8, max_tokens=64), tmp_path / "edge.yaml")
    expected = SVDPruneConfig(variance_threshold=0.9, budget=None, min_tokens=8, max_tokens=64)
    assert load_profile(path).config_for("gqa") == expected
    assert load_profile(path).config_for("gqa", budget=32).budget == 32  # explicit settings win
    with pytest.raises(ValueError, match="has no task 'pope'"):
        load_profile(path).config_for("pope")
