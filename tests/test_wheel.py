"""The wheel works outside the checkout: configs, search YAMLs and demo data ship inside it, found by name.

The wheel is built from a clean copy of the tracked files (``pip wheel .`` writes ``build/`` into the source
tree, DESIGN.md "Traps"), installed with ``--no-deps --target`` (the dependencies come from this virtualenv),
and run from an empty folder with ``PYTHONPATH`` pointing at the install, so nothing of the checkout is seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptive_svdprune.models.tiny import tiny_llava_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel installed into a folder of its own (``--target``); yields that folder."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(base / "dist")], cwd=src,
                   check=True, timeout=300)
    (wheel,) = (base / "dist").glob("adaptive_svdprune-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(base / "site"), str(wheel)], check=True,
                   timeout=300)
    yield base / "site"


def _run(site: Path, cwd: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(PYTHONPATH=str(site), HOME=str(cwd.parent / "home"), WANDB_MODE="disabled", HF_HUB_OFFLINE="1",
               ADAPTIVE_SVDPRUNE_CACHE=str(tiny_llava_path().parent), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "adaptive_svdprune.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def test_wheel_holds_the_resources(installed: Path) -> None:
    package = installed / "adaptive_svdprune"
    for name in ("configs/tiny-gqa.yaml", "search/demo.yml", "search/demo.json", "search/kubeflow.yml",
                 "fixtures/gqa/testdev_balanced_questions.json", "fixtures/textvqa/TextVQA_0.5.1_val.json",
                 "fixtures/jsonl/questions.jsonl"):
        assert (package / "resources" / name).is_file(), name
    assert list((package / "resources" / "fixtures" / "gqa" / "images").glob("*.jpg"))
    assert not (installed / "tests").exists() and not (installed / "configs").exists()


def test_version_and_packaged_eval_from_an_empty_folder(installed: Path, empty: Path) -> None:
    version = _run(installed, empty, "--version")
    assert version.returncode == 0 and version.stdout.startswith("adaptive-svdprune 0."), version.stderr
    where = subprocess.run([sys.executable, "-c", "import adaptive_svdprune; print(adaptive_svdprune.__file__)"],
                           capture_output=True, text=True, cwd=empty, env={**os.environ, "PYTHONPATH": str(installed)})
    assert where.stdout.strip().startswith(str(installed))  # the installed copy, not the checkout
    proc = _run(installed, empty, "eval", "--config", "tiny-gqa", "--limit", "2", "--batch-size", "2", "--out",
                "eval", "--no-wandb", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout)
    assert metrics["samples"] == 2 and (empty / "eval" / "metrics.json").is_file()


@pytest.mark.slow
def test_packaged_search_from_an_empty_folder(installed: Path, empty: Path) -> None:
    proc = _run(installed, empty, "search", "--config", "demo", "--trials", "1", "--concurrency", "1",
                "--trial-args", "--limit 2", "--timeout", "240", "--no-wandb", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(proc.stdout)
    assert document["n_trials"] == 1 and document["status"] in ("DONE", "NO_MORE_TRIAL")
    assert Path(document["nni_dir"]).is_relative_to(empty / "runs" / "nni")  # not inside the installed package
    assert not (installed / "runs").exists()
