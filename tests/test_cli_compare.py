"""``adaptive-svdprune compare``: methods x budgets through the real evaluation, fidelity and object recall."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_svdprune.cli import main
from adaptive_svdprune.shapes import write_split


@pytest.fixture(scope="module")
def shapes_gqa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_split(tmp_path_factory.mktemp("data") / "gqa", "gqa", "test", n=4, seed=11).root


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--methods", "svd,magic"], "unknown method 'magic'"),
     (["--budgets", "16,lots"], "--budgets must be a comma-separated list of int"),
     (["--budgets", " , "], "--budgets names nothing"),
     (["--budgets", "0,16"], "budgets must be positive integers, got [0]"),
     (["--task", "vqav9"], "unknown task 'vqav9'")],
    ids=["method", "budget-word", "budget-empty", "budget-zero", "task"],
)
def test_bad_input_is_one_line(argv: list[str], message: str, shapes_gqa: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", "--model", "tiny", "--data", str(shapes_gqa), "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--model", "tiny", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_compare_on_the_tiny_model(shapes_gqa: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    code = main(["compare", "--model", "tiny", "--data", str(shapes_gqa), "--methods", "svd,uniform",
                 "--budgets", "16,64,576", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((out / "comparison.json").read_text())
    rows = {(r["method"], r["budget"]): r for r in result["rows"]}
    assert set(rows) == {("svd", 16), ("svd", 64), ("uniform", 16), ("uniform", 64)}
    for (_, budget), row in rows.items():
        assert row["kept_tokens"] == budget and 0 <= row["accuracy"] <= 1 and 0 <= row["fidelity"] <= 1
        assert 0 <= row["object_recall"] <= 1
    # fewer tokens cost fewer FLOPs; the unpruned run is the end point, agrees with itself, keeps every patch
    assert rows[("svd", 16)]["tflops"] < rows[("svd", 64)]["tflops"] < result["unpruned"]["tflops"]
    assert result["unpruned"] == {**result["unpruned"], "kept_tokens": 576, "fidelity": 1.0, "object_recall": 1.0}
    assert (out / "comparison.png").stat().st_size > 0 and (out / "comparison.csv").read_text().count("\n") == 6
    # a rerun resumes every evaluation instead of generating again
    assert main(["compare", "--model", "tiny", "--data", str(shapes_gqa), "--methods", "svd,uniform",
                 "--budgets", "16,64,576", "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["rows"] == result["rows"]


def test_svd_center_is_centred_svd_prune(shapes_gqa: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``svd_center`` evaluates SVD-Prune with ``center=True`` (its run says so) and differs from ``svd``."""
    out = tmp_path / "cmp"
    code = main(["compare", "--model", "tiny", "--data", str(shapes_gqa), "--methods", "svd,svd_center",
                 "--budgets", "16", "--out", str(out), "--json"])
    assert code == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == {"svd", "svd_center"} and rows["svd_center"]["kept_tokens"] == 16
    run = json.loads((out / "runs" / "svd_center-16" / "run.json").read_text())
    plain = json.loads((out / "runs" / "svd-16" / "run.json").read_text())
    assert "center" in json.dumps(run) and run != plain
    assert '"center": true' in json.dumps(run)
