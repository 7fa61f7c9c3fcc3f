"""`adaptive-svdprune flops`: table and JSON output, the 84.8% headline, pass-through options, errors."""

from __future__ import annotations

import json

import pytest

from adaptive_svdprune.cli import main

JSON_KEYS = {
    "tokens", "vision", "selection", "projector", "llm_prefill", "decode", "total", "reduction_pct",
    "kv_cache_bytes", "prompt_tokens", "new_tokens",
}  # fmt: skip


def _json(capsys, *argv: str) -> list[dict]:
    assert main(["flops", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_done_criterion_shows_84_8_percent(capsys) -> None:
    assert main(["flops", "--model", "llava-1.5-7b", "--tokens", "576,16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert set(rows) == {"576", "16"}
    assert rows["576"][7] == "0.0%" and rows["16"][7] == "84.8%"
    assert "57 prompt tokens, 1 new token;" in lines[0]


def test_table_has_one_row_per_token_count(capsys) -> None:
    assert main(["flops", "--model", "llava-1.5-13b"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [
        "tokens", "vision", "selection", "projector", "llm_prefill", "decode", "total", "reduction", "kv_cache_MiB",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[3:]] == ["576", "192", "128", "64", "32", "16"]


def test_json_keys_and_plain_numbers(capsys) -> None:
    rows = _json(capsys, "--tokens", "576,192,128,64,32,16")
    assert [row["tokens"] for row in rows] == [576, 192, 128, 64, 32, 16]
    for row in rows:
        assert set(row) >= JSON_KEYS
        assert all(isinstance(row[key], int) for key in JSON_KEYS - {"reduction_pct"})
        assert row["total"] == sum(row[k] for k in ("vision", "selection", "projector", "llm_prefill", "decode"))
    assert rows[0]["reduction_pct"] == 0.0 and rows[0]["selection"] == 0
    assert abs(rows[-1]["reduction_pct"] - 84.8) <= 0.3
    reductions = [row["reduction_pct"] for row in rows]
    assert reductions == sorted(reductions)


def test_options_pass_through(capsys) -> None:
    base = _json(capsys, "--tokens", "64")[0]
    longer = _json(capsys, "--tokens", "64", "--prompt-tokens", "100", "--new-tokens", "8", "--dtype", "fp32")[0]
    assert (longer["prompt_tokens"], longer["new_tokens"]) == (100, 8)
    assert base["decode"] == 0 < longer["decode"]
    assert longer["kv_cache_bytes"] == base["kv_cache_bytes"] * 2 * (100 + 64 + 7) // (57 + 64)
    assert _json(capsys, "--tokens", "64", "--solver", "none")[0]["selection"] == 0
    assert _json(capsys, "--tokens", "64", "--solver", "lowrank", "--rank", "16")[0]["selection"] < base["selection"]
    analytic = _json(capsys, "--tokens", "64", "--method", "analytic")[0]
    assert {k: v for k, v in analytic.items() if k != "method"} == {k: v for k, v in base.items() if k != "method"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "llava-2-70b"], "llava-1.5-7b"),
        (["--tokens", "577"], "577"),
        (["--tokens=16,-4"], "-4"),
        (["--tokens", "16,many"], "comma-separated integers"),
        (["--prompt-tokens", "-1"], "-1"),
        (["--dtype", "fp7"], "fp7"),
    ],
    ids=["unknown-model", "too-many-tokens", "negative-tokens", "not-a-number", "negative-prompt", "dtype"],
)
def test_bad_input_is_one_clear_line(capsys, argv: list[str], message: str) -> None:
    assert main(["flops", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adaptive-svdprune flops: error:") and message in err
    assert "Traceback" not in err
