"""``adaptive-svdprune analyze`` on the cached tiny model and the GQA fixtures, run in-process through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from adaptive_svdprune.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

GQA = Path(__file__).parent / "fixtures" / "gqa"
OBJECTS = {"n100001": [{"patches": [75, 76, 99, 100]}, {"patches": [0, 1, 24, 25]}]}


@pytest.fixture(scope="module")
def data_with_objects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GQA fixtures with an ``objects.json`` beside the questions, as the shapes world writes it."""
    root = tmp_path_factory.mktemp("gqa")
    shutil.copytree(GQA, root, dirs_exist_ok=True)
    (root / "objects.json").write_text(json.dumps(OBJECTS))
    return root


def test_json_file_and_pictures(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_with_objects: Path) -> None:
    out = tmp_path / "analysis"
    code = main(["analyze", "--model", "tiny", "--task", "gqa", "--data", str(data_with_objects), "--limit", "2",
                 "--budget", "16", "--out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "analysis.json").read_text(), parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert printed == written
    assert written["objects_file"] == str(data_with_objects / "objects.json")
    assert list(written["methods"]) == ["svd", "random", "uniform", "l2norm", "cls_attention", "fastv"]
    assert written["methods"]["uniform"]["object_recall"] == pytest.approx(2 / 16)
    assert set(written["figures"]) == {"keep_heatmaps", "row_col_profiles", "attention_shares", "position_scores"}
    for name in written["figures"].values():
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 300


def test_text_summary_without_objects(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["analyze", "--task", "gqa", "--data", str(GQA), "--limit", "1", "--methods", "uniform,svd",
                 "--budget", "8", "--no-attention", "--out", str(tmp_path)])
    assert code == 0
    text = capsys.readouterr().out
    assert "uniform" in text and "note: no objects file" in text
    result = json.loads((tmp_path / "analysis.json").read_text())
    assert result["attention"] is None and result["methods"]["svd"]["object_recall"] is None
    assert set(result["figures"]) == {"keep_heatmaps", "row_col_profiles"}


@pytest.mark.parametrize(("argv", "needle"), [
    (["--methods", "svd,magic"], "'magic'"),
    (["--budget", "577"], "577"),
    (["--budget", "0"], "got 0"),
    (["--data", "/does/not/exist"], "/does/not/exist"),
    (["--objects", "/no/objects.json"], "/no/objects.json"),
    (["--task", "vqa"], "'vqa'"),
], ids=["unknown-method", "budget-above-576", "budget-zero", "missing-data", "missing-objects", "unknown-task"])
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                               needle: str) -> None:
    base = ["analyze", "--task", "gqa", "--data", str(GQA), "--out", str(tmp_path / "out")]
    code = main([*base, *argv])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("adaptive-svdprune analyze: error:") and needle in err
    assert not (tmp_path / "out").exists()  # nothing is written before the inputs are checked


def test_unwritable_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["analyze", "--task", "gqa", "--data", str(GQA), "--out", str(blocker / "sub")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "not a writable folder" in err
