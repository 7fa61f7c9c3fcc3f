"""`adaptive-svdprune flops --image-size`: the token count follows the image for anyres and Qwen2(.5)-VL models."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adaptive_svdprune.cli import main
from adaptive_svdprune.commands.flops import parse_image_size
from adaptive_svdprune.flops import count_flops, qwen_vl_grid
from adaptive_svdprune.flops._anyres import anyres_geometry
from adaptive_svdprune.flops._archs import load_arch_config


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["flops", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("text", "expected"),
                         [("640x480", (480, 640)), ("336", (336, 336)), ("1000X500", (500, 1000))],
                         ids=["wxh", "square", "capital-x"])
def test_parse_image_size(text: str, expected: tuple[int, int]) -> None:
    assert parse_image_size(text) == expected


def test_qwen_table_states_size_and_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    """Independent reference: the processor's resize (qwen_vl_grid) gives 17 x 23 merged tokens at 640 x 480."""
    t, h, w = qwen_vl_grid("qwen2.5-vl-7b", 480, 640)
    tokens = t * h * w // 4
    assert tokens == 391
    assert main(["flops", "--model", "qwen2.5-vl-7b", "--image-size", "640x480", "--tokens", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "image 640x480 (WxH): 391 image tokens" in lines[0]
    rows = _json(capsys, "--model", "qwen2.5-vl-7b", "--image-size", "640x480")
    assert rows[0]["tokens"] == 391 and rows[0]["reduction_pct"] == 0.0  # default list starts at all tokens
    assert [r["tokens"] for r in rows[1:]] == [192, 128, 64, 32, 16]
    assert all(r["image_size"] == "640x480" and r["image_tokens"] == 391 for r in rows)
    assert rows[-1]["total"] == count_flops("qwen2.5-vl-7b", 16, image_size=(480, 640)).total


def test_qwen_default_size_without_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, "--model", "qwen2.5-vl-7b", "--tokens", "864,64")
    assert rows[0]["image_size"] == "672x1008" and rows[0]["image_tokens"] == 864
    assert rows[0]["reduction_pct"] == 0.0


def test_anyres_tokens_follow_the_image_size(capsys: pytest.CaptureFixture[str]) -> None:
    positions = anyres_geometry(load_arch_config("llava-v1.6-7b"), (336, 336)).positions
    assert positions != anyres_geometry(load_arch_config("llava-v1.6-7b"), (672, 672)).positions
    rows = _json(capsys, "--model", "llava-v1.6-7b", "--image-size", "336", "--tokens", f"{positions},64")
    assert rows[0]["tokens"] == rows[0]["image_tokens"] == positions and rows[0]["reduction_pct"] == 0.0
    assert rows[1]["total"] == count_flops("llava-v1.6-7b", 64, image_size=(336, 336)).total


def test_llava_15_table_states_its_fixed_view(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--model", "llava-1.5-7b", "--tokens", "576,16"]) == 0
    assert "image 336x336 (WxH): 576 image tokens" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize(("argv", "needle"), [
    (["--model", "qwen2.5-vl-7b", "--image-size", "axb"], "'axb'"),
    (["--model", "qwen2.5-vl-7b", "--image-size", "0x480"], "'0x480'"),
    (["--model", "llava-v1.6-7b", "--image-size", "640x"], "'640x'"),
    (["--model", "llava-1.5-7b", "--image-size", "640x480"], "LLaVA-NeXT, LLaVA-OneVision, Qwen2(.5)-VL"),
    (["--model", "qwen2.5-vl-7b", "--image-size", "640x480", "--tokens", "392"], "392"),
], ids=["not-a-size", "zero", "missing-height", "llava-1.5-fixed", "above-the-image"])
def test_bad_image_size_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(["flops", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("adaptive-svdprune flops: error:") and needle in err
