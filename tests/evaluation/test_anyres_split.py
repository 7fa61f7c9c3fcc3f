"""``anyres_split`` (LLaVA-NeXT/OneVision global vs per-view selection) as an evaluation setting: EvalConfig, YAML,
the ``eval``/``generate`` flags, the resume fingerprint, and the search space and trial settings."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from adaptive_svdprune.cli import main
from adaptive_svdprune.commands.evaluate import add_arguments, build_config
from adaptive_svdprune.commands.search import _check_anyres_split
from adaptive_svdprune.evaluation import EvalConfig, ResumeMismatchError, run_evaluation
from adaptive_svdprune.models import families
from adaptive_svdprune.models.anyres import SPLITS
from adaptive_svdprune.search.space import (
    ANYRES_SPLITS,
    check_search_space,
    parse_anyres_split,
    search_space,
)
from adaptive_svdprune.search.trial import TrialSettings, build_parser, eval_config, settings_from_args

GQA = Path(__file__).parents[1] / "fixtures" / "gqa"


def _cfg(out: Path, **kw: Any) -> EvalConfig:
    base = dict(model="tiny-next", task="gqa", data=str(GQA), limit=1, batch_size=1, max_new_tokens=1, out=str(out),
                wandb=False, fidelity=False, progress_bar=False, method="svd", budget=40)
    base.update(kw)
    return EvalConfig(**base)


def test_config_field_checked_and_read_from_yaml(tmp_path: Path) -> None:
    assert EvalConfig().anyres_split == "global"
    with pytest.raises(ValueError, match=r"anyres_split must be one of \['global', 'per_view'\], got 'tiles'"):
        EvalConfig(anyres_split="tiles")
    config = tmp_path / "next.yaml"
    config.write_text(yaml.safe_dump({"model": "tiny-next", "task": "gqa", "anyres_split": "per_view"}))
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert build_config(parser.parse_args(["--config", str(config)])).anyres_split == "per_view"
    assert build_config(parser.parse_args(["--config", str(config), "--anyres-split", "global"])).anyres_split \
        == "global"  # the flag beats the file


def test_per_view_on_a_model_without_views_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--model", "tiny", "--task", "gqa", "--anyres-split", "per_view", "--no-wandb",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "anyres_split 'per_view'" in err and "LlavaForConditionalGeneration" in err
    assert not (tmp_path / "run").exists()


def test_the_split_reaches_the_wrapper_and_the_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = families.prune_model

    def spy(model: Any, config: Any, pad_token_id: Any = None, split: Any = "global") -> Any:
        seen.append(split)
        return original(model, config, pad_token_id=pad_token_id, split=split)

    monkeypatch.setattr(families, "prune_model", spy)
    out = tmp_path / "run"
    metrics = run_evaluation(_cfg(out, anyres_split="per_view"))
    assert metrics["samples"] == 1 and seen[0] == "per_view"
    stored = json.loads((out / "run.json").read_text())["fingerprint"]
    assert stored["anyres_split"] == "per_view"
    with pytest.raises(ResumeMismatchError, match="anyres_split 'per_view' -> "):
        run_evaluation(_cfg(out))  # global: refused, naming the difference
    assert run_evaluation(_cfg(out, anyres_split="per_view"))["resumed"] == 1


def test_generate_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--model", "tiny-next", "--budget", "40", "--anyres-split", "per_view",
                 "--max-new-tokens", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["anyres_split"] == "per_view" and result["kept_tokens"] == 40
    assert main(["generate", "--model", "tiny-qwen2.5-vl", "--budget", "4", "--anyres-split", "per_view"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--anyres-split 'per_view'" in err and "Qwen2_5_VL" in err


def test_search_space_and_trial_settings() -> None:
    assert ANYRES_SPLITS == SPLITS
    space = search_space(budgets=(16,), anyres_splits=("global", "per_view"))
    assert space["anyres_split"] == {"_type": "choice", "_value": ["global", "per_view"]}
    check_search_space(space, tuner="TPE")
    with pytest.raises(ValueError, match=r"anyres_split must be one of .*'tiles'"):
        check_search_space({**space, "anyres_split": {"_type": "choice", "_value": ["global", "tiles"]}})
    with pytest.raises(ValueError, match="anyres_split has _type 'uniform'"):
        check_search_space({**space, "anyres_split": {"_type": "uniform", "_value": [0, 1]}})
    with pytest.raises(ValueError, match=r"tuner GP .* anyres_split"):
        check_search_space(search_space(budgets=(16,), adaptive=False, anyres_splits=("per_view",)), tuner="GP")
    assert parse_anyres_split({"budget": 16}) == "global"
    with pytest.raises(ValueError, match="'tiles'"):
        parse_anyres_split({"anyres_split": "tiles"})
    settings = settings_from_args(build_parser().parse_args(["--task", "gqa", "--data", str(GQA), "--model",
                                                             "tiny-next", "--anyres-split", "per_view"]))
    assert settings.anyres_split == "per_view"
    assert eval_config({"budget": 16}, settings).anyres_split == "per_view"  # the fixed setting
    plain = TrialSettings(task="gqa", data=str(GQA), model="tiny-next")
    assert eval_config({"budget": 16, "anyres_split": "per_view"}, plain).anyres_split == "per_view"  # the space
    assert eval_config({"budget": 16}, plain).out != eval_config({"budget": 16, "anyres_split": "per_view"},
                                                                 plain).out  # separate run folders
    with pytest.raises(ValueError, match="anyres_split must be one of"):
        TrialSettings(task="gqa", data=str(GQA), anyres_split="tiles")


@pytest.mark.parametrize(("model", "space", "command", "fails"), [
    ("tiny", {"anyres_split": {"_type": "choice", "_value": ["global", "per_view"]}}, "", True),
    ("tiny", {}, "python -m adaptive_svdprune.search.trial --anyres-split per_view", True),
    ("tiny", {}, "python -m adaptive_svdprune.search.trial", False),
    ("tiny-next", {"anyres_split": {"_type": "choice", "_value": ["global", "per_view"]}}, "", False),
], ids=["space-llava", "command-llava", "global-llava", "space-next"])
def test_search_preflight_refuses_per_view_without_views(tmp_path: Path, model: str, space: dict, command: str,
                                                         fails: bool) -> None:
    canonical = SimpleNamespace(search_space=space, trial_command=command)
    if fails:
        with pytest.raises(ValueError, match=r"anyres_split .*'per_view' applies to LLaVA-NeXT/OneVision"):
            _check_anyres_split(canonical, tmp_path, model)
    else:
        _check_anyres_split(canonical, tmp_path, model)
