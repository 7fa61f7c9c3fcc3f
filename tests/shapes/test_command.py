"""``adaptive-svdprune shapes``: writes a split; bad input is one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_svdprune.cli import main
from adaptive_svdprune.data import load_task


def test_writes_a_split_that_eval_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["shapes", "--out", str(tmp_path), "--format", "textvqa", "--n", "3", "--seed", "1", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["questions"] == 3 and summary["questions_file"].endswith("TextVQA_0.5.1_val.json")
    assert len(load_task("textvqa", tmp_path)) == 3


@pytest.mark.parametrize("argv", [
    ["--n", "0"],
    ["--n", "-3"],
], ids=["n0", "negative"])
def test_bad_count(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    rc = main(["shapes", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "positive" in err


def test_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc = main(["shapes", "--out", str(blocker / "data"), "--n", "2"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "a-file" in err


def test_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["shapes", "--out", str(tmp_path), "--format", "coco"])
    assert exit_info.value.code != 0
    assert "invalid choice: 'coco'" in capsys.readouterr().err
