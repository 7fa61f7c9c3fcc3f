"""Several devices: every question exactly once (the DistributedSampler pads with repeats), one writer, one print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_svdprune.evaluation import EvalConfig, run_evaluation
from adaptive_svdprune.evaluation.module import first_per_question
from adaptive_svdprune.evaluation.run_folder import is_global_zero

ROOT = Path(__file__).resolve().parent.parent


def _record(qid: str, answer: str = "a") -> dict:
    return {"question_id": qid, "answer": answer}


@pytest.mark.parametrize(
    ("parts", "seen", "rank", "fresh", "mine"),
    [
        pytest.param([[_record("1"), _record("2")], [_record("3"), _record("1", "dup")]], set(), 0,
                     ["1", "2", "3"], ["1", "2"], id="padding-repeat-dropped-rank0"),
        pytest.param([[_record("1"), _record("2")], [_record("3"), _record("1", "dup")]], set(), 1,
                     ["1", "2", "3"], ["3"], id="padding-repeat-dropped-rank1"),
        pytest.param([[_record("1")], [_record("2")]], {"1"}, 0, ["2"], [], id="already-answered"),
        pytest.param([[_record("1"), _record("1")]], set(), 0, ["1"], ["1"], id="single-process-duplicate"),
    ],
)
def test_first_record_per_question_across_ranks(parts: list, seen: set, rank: int, fresh: list, mine: list) -> None:
    got_fresh, got_mine = first_per_question(parts, seen, rank)
    assert [r["question_id"] for r in got_fresh] == fresh and [r["question_id"] for r in got_mine] == mine
    assert all(r["answer"] == "a" for r in got_fresh)  # the first record wins


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        pytest.param({}, True, id="single-process"),
        pytest.param({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True, id="rank0"),
        pytest.param({"LOCAL_RANK": "1"}, False, id="local-rank1"),
        pytest.param({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False, id="second-node"),
        pytest.param({"RANK": "3"}, False, id="global-rank3"),
    ],
)
def test_only_global_rank_zero_writes(monkeypatch: pytest.MonkeyPatch, env: dict, zero: bool) -> None:
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_global_zero() is zero


def test_ddp_spawn_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"strategy 'ddp_spawn' is not supported.*use strategy 'ddp'"):
        run_evaluation(EvalConfig(strategy="ddp_spawn", devices=2, accelerator="cpu", out=str(tmp_path / "o"),
                                  wandb=False, limit=1))


# two fresh processes load torch, Lightning and the model: about 45 s on 2 busy cores
def test_two_cpu_processes_answer_each_question_once_and_print_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    limit = 5  # odd: the DistributedSampler pads rank 1 with a repeat of the first question
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    command = [sys.executable, "-m", "adaptive_svdprune.cli", "eval", "--config", "tiny-gqa", "--data",
               str(ROOT / "tests" / "fixtures" / "gqa"), "--limit", str(limit), "--batch-size", "2",
               "--max-new-tokens", "1", "--no-fidelity", "--no-wandb", "--accelerator", "cpu", "--devices", "2",
               "--strategy", "ddp", "--out", str(out), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout)  # one JSON document: the second rank printed nothing
    assert metrics["samples"] == limit
    qids = [json.loads(line)["question_id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(qids) == len(set(qids)) == limit
    assert json.loads((out / "metrics.json").read_text())["samples"] == limit
