"""Resume integrity: same-settings fingerprint, one writer per folder, de-duplication, the file's tail, empty sets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_svdprune.evaluation import (
    EvalConfig,
    OutputLock,
    OutputLockedError,
    ResumeMismatchError,
    read_predictions,
    run_evaluation,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _cfg(out: Path, **kw: object) -> EvalConfig:
    base = dict(task="gqa", limit=2, batch_size=2, max_new_tokens=1, out=str(out), wandb=False, fidelity=False,
                progress_bar=False, method="svd", budget=16)
    base.update(kw)
    return EvalConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One finished run (svd, K=16, 2 questions) that the tests copy."""
    out = tmp_path_factory.mktemp("first") / "run"
    return out, run_evaluation(_cfg(out))


def _copy(first_run: tuple[Path, dict], tmp_path: Path) -> Path:
    return Path(shutil.copytree(first_run[0], tmp_path / "run"))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"method": "l2norm", "budget": 32}, "selector.method 'svd' -> 'l2norm'", id="method"),
        pytest.param({"budget": 32}, "selector.budget 16 -> 32", id="budget"),
        pytest.param({"budget": None, "variance_threshold": 0.8}, "selector.variance_threshold", id="adaptive"),
        pytest.param({"max_new_tokens": 3}, "max_new_tokens 1 -> 3", id="max-new-tokens"),
        pytest.param({"fidelity": True}, "fidelity False -> True", id="fidelity"),
        pytest.param({"data": str(FIXTURES / "jsonl"), "task": "jsonl"}, "task 'gqa' -> 'jsonl'", id="task-data"),
        pytest.param({"precision": "bf16-true"}, "precision None -> 'bf16-true'", id="precision"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_the_difference(
    first_run: tuple[Path, dict], tmp_path: Path, change: dict, named: str
) -> None:
    out = _copy(first_run, tmp_path)
    before = (out / "predictions.jsonl").read_text()
    with pytest.raises(ResumeMismatchError, match="another out folder") as info:
        run_evaluation(_cfg(out, **change))
    assert named in str(info.value)
    assert (out / "predictions.jsonl").read_text() == before  # nothing appended or cut


def test_overwrite_discards_old_predictions(first_run: tuple[Path, dict], tmp_path: Path) -> None:
    out = _copy(first_run, tmp_path)
    metrics = run_evaluation(_cfg(out, method="l2norm", budget=32, overwrite=True))
    assert metrics["resumed"] == 0 and metrics["mean_kept_tokens"] == 32 and metrics["method"] == "l2norm"
    assert {r["mean_kept_tokens"] for r in read_predictions(out / "predictions.jsonl")} == {32.0}
    assert json.loads((out / "run.json").read_text())["fingerprint"]["selector"]["method"] == "l2norm"


def test_a_larger_limit_extends_the_same_run(first_run: tuple[Path, dict], tmp_path: Path) -> None:
    out = _copy(first_run, tmp_path)
    metrics = run_evaluation(_cfg(out, limit=3, batch_size=1))  # limit and batch size are not settings
    assert metrics["resumed"] == 2 and metrics["samples"] == 3


def test_predictions_without_a_fingerprint_are_refused(first_run: tuple[Path, dict], tmp_path: Path) -> None:
    out = _copy(first_run, tmp_path)
    (out / "run.json").unlink()
    legacy = [{k: v for k, v in r.items() if k != "run"} for r in read_predictions(out / "predictions.jsonl")]
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in legacy))
    with pytest.raises(ResumeMismatchError, match="no matching settings fingerprint"):
        run_evaluation(_cfg(out))


def test_duplicate_records_count_once(first_run: tuple[Path, dict], tmp_path: Path) -> None:
    out = _copy(first_run, tmp_path)
    lines = (out / "predictions.jsonl").read_text()
    (out / "predictions.jsonl").write_text(lines + lines)  # e.g. two writers before the lock existed
    metrics = run_evaluation(_cfg(out))
    assert metrics["samples"] == 2 and metrics["resumed"] == 2
    assert metrics["accuracy"] == first_run[1]["accuracy"]
    assert len(read_predictions(out / "predictions.jsonl")) == 2


def test_a_second_writer_is_refused_naming_the_holder(first_run: tuple[Path, dict], tmp_path: Path) -> None:
    out = _copy(first_run, tmp_path)
    with OutputLock(out), pytest.raises(OutputLockedError, match=f"pid {os.getpid()} on host"):
        run_evaluation(_cfg(out))
    assert not (out / ".lock").exists()  # released


def test_a_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    script = (f"import sys, time; from adaptive_svdprune.evaluation import OutputLock\n"
              f"lock = OutputLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid} on host"):
            OutputLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(UserWarning, match=f"stale lock .* pid {holder.pid}"):  # its lock file stays: stale
        OutputLock(tmp_path).acquire().release()


def test_a_stale_lock_of_a_dead_process_is_taken_over(first_run: tuple[Path, dict], tmp_path: Path) -> None:
    out = _copy(first_run, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    import socket

    (out / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    with pytest.warns(UserWarning, match=f"stale lock .*pid {pid}"):
        metrics = run_evaluation(_cfg(out))
    assert metrics["resumed"] == 2 and not (out / ".lock").exists()


@pytest.mark.parametrize(
    ("tail", "resumed", "warns"),
    [
        pytest.param("complete-no-newline", 2, False, id="complete-record-kept"),
        pytest.param("torn", 1, True, id="torn-record-cut"),
    ],
)
def test_last_record_without_newline(first_run: tuple[Path, dict], tmp_path: Path, tail: str, resumed: int,
                                     warns: bool) -> None:
    out = _copy(first_run, tmp_path)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    last = lines[1] if tail == "complete-no-newline" else lines[1][:30]
    (out / "predictions.jsonl").write_text(lines[0] + "\n" + last)
    if warns:
        with pytest.warns(UserWarning, match="torn last record"):
            metrics = run_evaluation(_cfg(out))
    else:
        metrics = run_evaluation(_cfg(out))
    assert metrics["resumed"] == resumed and metrics["samples"] == 2
    text = (out / "predictions.jsonl").read_text()
    assert text.endswith("\n") and [json.loads(x)["question_id"] for x in text.splitlines()] == \
        [json.loads(x)["question_id"] for x in lines]


@pytest.mark.parametrize(
    ("task", "name", "content"),
    [
        pytest.param("gqa", "testdev_balanced_questions.json", "{}", id="gqa-empty"),
        pytest.param("jsonl", "questions.jsonl", "", id="jsonl-empty"),
    ],
)
def test_a_questions_file_without_questions_is_an_error(tmp_path: Path, task: str, name: str, content: str) -> None:
    data = Path(shutil.copytree(FIXTURES / task, tmp_path / task))
    (data / name).write_text(content)
    with pytest.raises(ValueError, match=f"no questions in .*{name}"):
        run_evaluation(_cfg(tmp_path / "out", task=task, data=str(data)))
    assert not (tmp_path / "out" / "metrics.json").exists()
