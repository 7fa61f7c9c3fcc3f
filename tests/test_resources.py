"""Packaged resources: the copies in the package equal the repository's files, and names resolve."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from adaptive_svdprune.resources import (
    CONFIG_KINDS,
    RESOURCES_DIR,
    config_names,
    fixtures_dir,
    is_packaged,
    resolve_config,
    resolve_data,
)

ROOT = Path(__file__).resolve().parents[1]
SYNC = "run: python -c \"from adaptive_svdprune.resources import sync_from_checkout; sync_from_checkout('.')\""


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in suffixes)


@pytest.mark.parametrize("folder", ["configs", "search"])
def test_packaged_copies_equal_the_repository(folder: str) -> None:
    suffixes = (".yaml", ".yml", ".json")
    ours, packaged = ROOT / folder, RESOURCES_DIR / folder
    assert _files(ours, suffixes) == _files(packaged, suffixes), SYNC
    for name in _files(ours, suffixes):
        assert filecmp.cmp(ours / name, packaged / name, shallow=False), f"{folder}/{name} differs; {SYNC}"


@pytest.mark.parametrize("task", ["gqa", "textvqa", "jsonl"])
def test_packaged_fixtures_equal_the_test_fixtures(task: str) -> None:
    compare = filecmp.dircmp(ROOT / "tests" / "fixtures" / task, fixtures_dir(task))
    stack = [compare]
    while stack:
        c = stack.pop()
        assert not (c.left_only or c.right_only or c.diff_files), f"fixtures/{task} differs; {SYNC}"
        stack += c.subdirs.values()


@pytest.mark.parametrize(
    ("given", "kind", "expected"),
    [
        ("tiny-gqa", "eval", "configs/tiny-gqa.yaml"),
        ("tiny-gqa.yaml", "eval", "configs/tiny-gqa.yaml"),
        ("demo", "search", "search/demo.yml"),
        ("kubeflow.yml", "search", "search/kubeflow.yml"),
    ],
    ids=["eval-name", "eval-file-name", "search-name", "search-file-name"],
)
def test_names_resolve_in_the_package_from_anywhere(
    given: str, kind: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config(given, kind) == RESOURCES_DIR / expected  # type: ignore[arg-type]
    assert is_packaged(resolve_config(given, kind))  # type: ignore[arg-type]


def test_local_folder_and_paths_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny-gqa.yaml").write_text("model: tiny\n")
    assert resolve_config("tiny-gqa", "eval") == Path("configs/tiny-gqa.yaml")
    (tmp_path / "mine.yaml").write_text("model: tiny\n")
    assert resolve_config(tmp_path / "mine.yaml", "eval") == tmp_path / "mine.yaml"
    assert not is_packaged(tmp_path / "mine.yaml")


@pytest.mark.parametrize(
    ("given", "kind", "match"),
    [("nope", "eval", "'nope' not found.*tiny-gqa"), ("configs/nope.yaml", "eval", "not found"),
     ("demo", "search-space", "kind must be one of")],
    ids=["unknown-name", "missing-path", "bad-kind"],
)
def test_unknown_configs_are_named(given: str, kind: str, match: str) -> None:
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        resolve_config(given, kind)  # type: ignore[arg-type]


def test_config_names_cover_the_shipped_files() -> None:
    assert {"tiny-gqa", "tiny-textvqa"} <= set(config_names("eval"))
    assert {"demo", "gqa", "textvqa", "remote", "kubeflow"} <= set(config_names("search"))
    assert set(CONFIG_KINDS) == {"eval", "search"}


def test_fixture_paths_fall_back_to_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_data("tests/fixtures/gqa") == fixtures_dir("gqa")
    assert resolve_data("data/gqa") == Path("data/gqa")  # other missing paths stay as given (the loader says so)
    (tmp_path / "tests" / "fixtures" / "gqa").mkdir(parents=True)
    assert resolve_data("tests/fixtures/gqa") == Path("tests/fixtures/gqa")  # an existing folder wins
