"""``adaptive-svdprune analyze --model tiny-next / tiny-onevision / tiny-qwen2.5-vl`` through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from adaptive_svdprune.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

GQA = Path(__file__).parents[1] / "fixtures" / "gqa"


@pytest.mark.parametrize(("model", "budget", "figures"), [
    ("tiny-next", "40", {"keep_heatmaps", "row_col_profiles", "keep_heatmaps_by_view", "attention_shares",
                         "position_scores"}),
    ("tiny-qwen2.5-vl", "4", {"keep_heatmaps", "row_col_profiles", "attention_shares", "position_scores"}),
], ids=["next", "qwen"])
def test_json_and_pictures(capsys: pytest.CaptureFixture[str], tmp_path: Path, model: str, budget: str,
                           figures: set[str]) -> None:
    data = tmp_path / "gqa"
    shutil.copytree(GQA, data)
    (data / "objects.json").write_text(json.dumps({"n100001": [{"patches": [0, 1]}]}))  # LLaVA-1.5's grid
    out = tmp_path / "analysis"
    code = main(["analyze", "--model", model, "--task", "gqa", "--data", str(data), "--limit", "2",
                 "--budget", budget, "--out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "analysis.json").read_text(), parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert printed == written and written["model"] == model and written["coordinates"] == "relative"
    assert written["objects_file"] is None and any("objects file" in n and "ignored" in n for n in written["notes"])
    assert all(m["object_recall"] is None for m in written["methods"].values())
    assert set(written["figures"]) == figures
    for name in written["figures"].values():
        with Image.open(out / name) as image:
            assert image.format == "PNG"


def test_onevision_per_view_text_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["analyze", "--model", "tiny-onevision", "--task", "gqa", "--data", str(GQA), "--limit", "1",
                 "--budget", "30", "--anyres-split", "per_view", "--no-attention", "--out", str(tmp_path)])
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("LlavaOnevisionForConditionalGeneration:") and "note: cls_attention skipped:" in text
    result = json.loads((tmp_path / "analysis.json").read_text())
    assert result["anyres_split"] == "per_view" and "cls_attention" in result["skipped"]


@pytest.mark.parametrize(("argv", "needle"), [
    (["--model", "tiny-qwen2.5-vl", "--methods", "cls_attention"], "no requested method applies"),
    (["--model", "tiny-onevision", "--methods", "cls_attention"], "SiglipVisionModel"),
    (["--model", "tiny-qwen2.5-vl", "--budget", "10"], "budget must be in [1, 9]"),
    (["--model", "tiny-qwen2.5-vl", "--budget", "0"], "got 0"),
    (["--model", "tiny", "--anyres-split", "per_view"], "--anyres-split per_view"),
    (["--model", "tiny-qwen2.5-vl", "--anyres-split", "per_view"], "'qwen2_5_vl'"),
    (["--model", "tiny-next", "--methods", "svd,magic"], "'magic'"),
], ids=["qwen-cls-only", "onevision-cls-only", "qwen-budget-above-image", "budget-zero", "per-view-llava",
        "per-view-qwen", "unknown-method"])
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                               needle: str) -> None:
    code = main(["analyze", "--task", "gqa", "--data", str(GQA), "--limit", "1", "--no-attention",
                 "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("adaptive-svdprune analyze: error:") and needle in err
    assert not (tmp_path / "out").exists()  # nothing is written for bad input
