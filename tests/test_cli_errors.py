"""The CLI's one error boundary: a user error is one line and exit 2, a bug one line pointing to ``--debug``.

Each class of error goes through ``cli.main([...])``: real commands for the checks that run before the work
(outputs, ports, devices, models, images, configs), and a stand-in command for library exceptions that are
hard to provoke on a CPU box (Lightning, NNI, the hub). One real subprocess checks the console-script path.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from adaptive_svdprune import cli
from adaptive_svdprune.assets import demo_image_path
from adaptive_svdprune.cli import main


def _one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"adaptive-svdprune {command}: error: "), err
    return err.removeprefix(f"adaptive-svdprune {command}: error: ")


@pytest.fixture
def broken_png(tmp_path: Path) -> Path:
    path = tmp_path / "broken.png"
    path.write_bytes(b"not an image at all")
    return path


@pytest.fixture
def truncated_png(tmp_path: Path) -> Path:
    data = demo_image_path("scene").read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("x")
    return path


@pytest.fixture
def bad_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yml"
    path.write_text("searchSpaceFile: space.json\ntrialCommand: [python, -m\n")
    return path


@pytest.fixture
def results_json(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text('[{"trial_id": "a", "parameters": {"variance_threshold": 0.9, "budget": 16}, "accuracy": 0.5, '
                    '"tflops": 1.0, "mean_kept_tokens": 16}]')
    return path


# (argv template, command, expected message regex); {fixture} fields are filled from the fixtures above
CASES: list[tuple[list[str], str, str]] = [
    (["generate", "--image", "{broken_png}"], "generate", r"--image '.*broken.png' is not a readable image"),
    (["generate", "--image", "{truncated_png}"], "generate", r"--image '.*truncated.png' is not a readable image"),
    (["generate", "--image", "{tmp}/missing.png"], "generate", r"--image '.*missing.png' does not exist"),
    (["generate", "--model", "/nonexistent/llava"], "generate", r"--model '/nonexistent/llava': no such model folder"),
    (["generate", "--model", "{tmp}"], "generate", r"--model '.*': the folder has no config.json"),
    (["generate", "--model", "not a/valid id"], "generate", r"neither a model folder nor a hub id"),
    (["generate", "--model", "llava-hf/not-cached-model"], "generate",
     r"not in the local Hugging Face cache and HF_HUB_OFFLINE is set"),
    (["generate", "--device", "cuda"], "generate", r"--device 'cuda': CUDA is not available here"),
    (["generate", "--save-overlay", "{a_file}/sub/kept.png"], "generate", r"--save-overlay .* is a file, not a folder"),
    (["generate", "--save-overlay", "/proc/adaptive-svdprune/kept.png"], "generate",
     r"--save-overlay .*: cannot write in '/proc'"),
    (["search", "--config", "{bad_yaml}"], "search", r"bad.yml is not valid YAML"),
    (["search", "--config", "nope"], "search", r"experiment config not found: .*'nope' not found.*demo"),
    (["search", "--config", "demo", "--out", "{a_file}", "--nni-dir", "{tmp}/nni"], "search",
     r"--out '.*a-file' is a file, not a folder"),
    (["search", "--config", "demo", "--nni-dir", "{a_file}"], "search", r"--nni-dir '.*a-file' is a file"),
    (["search", "--config", "demo", "--port", "{listening_port}", "--out", "{tmp}/o", "--nni-dir", "{tmp}/nni"],
     "search", r"--port \d+: port \d+ is busy"),
    (["search", "--config", "demo", "--timeout", "0"], "search", r"--timeout must be > 0 seconds, got 0"),
    (["pareto", "--results", "{tmp}/missing.json"], "pareto", r"results file not found: .*missing.json"),
    (["pareto", "--results", "{results_json}", "--out", "{a_file}", "--no-wandb"], "pareto",
     r"--out '.*a-file' is a file, not a folder"),
    (["profile", "--results", "{results_json}", "--task", "gqa", "--name", "p", "--max-tflops", "2", "--out",
      "{tmp}"], "profile", r"--out '.*' is a folder; give a file name"),
    (["demo", "--out", "{a_file}"], "demo", r"--out '.*a-file' is a file, not a folder"),
    (["flops", "--tokens", "x"], "flops", r"--tokens must be comma-separated integers, got 'x'"),
]
CASE_IDS = [
    "broken-image", "truncated-image", "missing-image", "missing-model-folder", "folder-without-config",
    "invalid-model-id", "hub-id-offline", "cuda-without-cuda", "overlay-under-a-file", "overlay-unwritable",
    "yaml-syntax", "unknown-config-name", "search-out-is-a-file", "nni-dir-is-a-file", "busy-port", "bad-timeout",
    "pareto-missing-results", "pareto-out-is-a-file", "profile-out-is-a-folder", "demo-out-is-a-file",
    "flops-bad-tokens",
]


@pytest.mark.parametrize(("argv", "command", "match"), CASES, ids=CASE_IDS)
def test_user_errors_are_one_line(
    argv: list[str], command: str, match: str, request: pytest.FixtureRequest, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    names = {"tmp": tmp_path}
    for word in argv:
        if word.startswith("{") and word.split("}")[0][1:] != "tmp":
            name = word.split("}")[0][1:]
            names[name] = request.getfixturevalue(name)
    filled = [word.format(**names) for word in argv]
    start = time.monotonic()
    assert main(filled) == 2
    assert time.monotonic() - start < 20  # failed before any work (no search, no hub retries)
    import re

    message = _one_error_line(capsys, command)
    assert re.search(match, message), message
    assert not (tmp_path / "nni").exists()  # no NNI manager was started for a bad search


class Boom(Exception):
    """Stand-in for an internal bug."""


def _library_errors() -> list[tuple[BaseException, int, str]]:
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from PIL import UnidentifiedImageError

    wrapped = OSError("Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/x/y'. Use `repo_type`")
    wrapped.__cause__ = HFValidationError("Repo id must be in the form")
    offline_os = OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them "
                         "in the cached files.\nCheck your internet connection or see how to run the library in "
                         "offline mode.")
    return [
        (MisconfigurationException("`devices` selected with `CPUAccelerator` should be an int > 0."), 2,
         r"devices. selected with .CPUAccelerator"),
        (yaml.safe_load_all, 2, r"while parsing"),  # replaced below by a real YAMLError
        (UnidentifiedImageError("cannot identify image file 'x.jpg'"), 2, r"cannot identify image file 'x.jpg'"),
        (OSError("image file is truncated (12 bytes not processed)"), 2, r"image file is truncated"),
        (wrapped, 2, r"neither an existing checkpoint folder nor a valid hub id"),
        (offline_os, 2, r"not in the local Hugging Face cache and the hub cannot be reached"),
        (OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled."), 2, r"offline mode"),
        (LocalEntryNotFoundError("Cannot find the requested files in the disk cache"), 2, r"disk cache"),
        (RuntimeError("Port 8080 is not idle "), 2, r"the port is busy"),
        (AssertionError("Torch not compiled with CUDA enabled"), 2, r"CUDA is not available"),
        (PermissionError(13, "Permission denied", "/root/out"), 2, r"^Permission denied: '/root/out'$"),
        (ValueError("budget must be >= 1, got 0"), 2, r"^budget must be >= 1, got 0$"),
        (Boom("unexpected"), 1, r"^internal error: Boom: unexpected \(rerun with --debug for the traceback\)$"),
        (ZeroDivisionError("division by zero"), 1, r"internal error: ZeroDivisionError.*--debug"),
    ]


def _yaml_error() -> yaml.YAMLError:
    try:
        yaml.safe_load("a: [1, 2\nb: 3")
    except yaml.YAMLError as err:
        return err
    raise AssertionError("no YAML error")


LIBRARY_IDS = ["lightning", "yaml", "pil-unidentified", "pil-truncated", "hf-repo-id", "hf-offline-oserror",
               "hf-offline-mode", "hf-local-entry", "nni-port", "torch-cuda", "permission", "value", "internal",
               "internal-zero-division"]


@pytest.mark.parametrize("index", range(len(LIBRARY_IDS)), ids=LIBRARY_IDS)
def test_library_errors_through_the_boundary(
    index: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from adaptive_svdprune.commands import flops

    error, code, match = _library_errors()[index]
    if not isinstance(error, BaseException):
        error = _yaml_error()

    def fail(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(flops, "run", fail)
    assert main(["flops"]) == code
    message = _one_error_line(capsys, "flops")
    assert re.search(match, message), message


def test_hub_id_without_network_fails_fast(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not offline by setting, but the hub does not answer: one line at once, not half a minute of retries."""
    from adaptive_svdprune.commands import _checks

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(_checks, "_hub_reachable", lambda timeout_s=3.0: False)
    start = time.monotonic()
    assert main(["generate", "--model", "llava-hf/not-cached-model"]) == 2
    assert time.monotonic() - start < 20
    assert "the hub cannot be reached (no network?)" in _one_error_line(capsys, "generate")


@pytest.mark.parametrize(
    ("body", "code", "match"),
    [("raise TypeError('max_new_tokens must be an int, got \\'four\\'')", 2, r"^max_new_tokens must be an int"),
     ("(lambda a: a)(1, 2)", 1, r"^internal error: TypeError: .*takes 1 positional argument.*--debug"),
     ("'four' < 4", 1, r"^internal error: TypeError: '<' not supported"),
     ("raise KeyError('task')", 2, r"^missing key 'task'$"),
     ("{}['task']", 1, r"^internal error: KeyError: 'task'")],
    ids=["type-check", "bad-call", "comparison", "explicit-key", "dict-lookup"],
)
def test_type_and_key_errors_from_a_check_or_from_a_bug(
    body: str, code: int, match: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import importlib.util
    import re

    from adaptive_svdprune.commands import flops

    source = tmp_path / "failing_command.py"  # a real source file, as a command's frame has
    source.write_text(f"def fail(args):\n    {body}\n")
    spec = importlib.util.spec_from_file_location("failing_command", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(flops, "run", module.fail)
    assert main(["flops"]) == code
    message = _one_error_line(capsys, "flops")
    assert re.search(match, message), message


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptive_svdprune.commands import flops

    def fail(args: argparse.Namespace) -> int:
        raise Boom("see me")

    monkeypatch.setattr(flops, "run", fail)
    for argv in (["--debug", "flops"], ["flops", "--debug"]):
        with pytest.raises(Boom, match="see me"):
            main(argv)


@pytest.mark.parametrize(("signum", "code", "text"), [(None, 130, "interrupted"), (15, 143, "stopped by SIGTERM"),
                                                      (1, 129, "stopped by SIGHUP")], ids=["ctrl-c", "term", "hup"])
def test_interruptions_exit_128_plus_signal(
    signum: int | None, code: int, text: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from adaptive_svdprune.commands import flops
    from adaptive_svdprune.search.experiment import Terminated

    def fail(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt if signum is None else Terminated(signum)

    monkeypatch.setattr(flops, "run", fail)
    assert main(["flops"]) == code
    assert capsys.readouterr().err.strip() == f"adaptive-svdprune flops: {text}"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip().startswith("adaptive-svdprune ")


@pytest.mark.parametrize("argv", [["flops"], ["generate"], ["demo"], ["search", "--config", "demo"],
                                  ["pareto", "--results", "r.json"]], ids=lambda a: a[0])
def test_debug_before_or_after_the_command(argv: list[str]) -> None:
    parser = cli.build_parser()
    assert parser.parse_args([*argv, "--debug"]).debug and parser.parse_args(["--debug", *argv]).debug
    assert not parser.parse_args(argv).debug


def test_a_real_process_prints_one_line(broken_png: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "adaptive_svdprune.cli", "generate", "--image", str(broken_png)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("adaptive-svdprune generate: error: --image"), proc.stderr
    assert proc.stdout == ""
