"""The package's import direction: each layer imports only the layers below it (DESIGN.md, section 2).

Every ``import`` and ``from ... import`` in the package is read with :mod:`ast`, wherever it stands (module
level, inside functions, under ``TYPE_CHECKING``), together with ``importlib.import_module("...")`` calls on
string constants, so a lazy import cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import adaptive_svdprune

PACKAGE_DIR = Path(adaptive_svdprune.__file__).parent
PACKAGE = "adaptive_svdprune"

#: Top-level part of the package -> layer. A module may import its own part and any part of a lower layer.
LAYERS: dict[str, int] = {
    # bottom: tensors, data, metrics, FLOPs and bundled assets beside each other
    "pruning": 0,
    "data": 0,
    "metrics": 0,
    "flops": 0,
    "assets": 0,
    # packaged configs, search YAMLs and demo data, found by name (stdlib only)
    "resources": 0,
    # deployment artefacts and the procedural world, on the core
    "profiles": 1,
    "shapes": 1,
    # model wrappers, vision features and their cache, named checkpoints
    "models": 2,
    # results maths and diagnostics that need models but no NNI
    "tradeoffs": 3,
    "analysis": 3,
    "evaluation": 4,
    # NNI only
    "search": 5,
    # the surface
    "commands": 6,
    # the console script and the package root's lazy exports
    "cli": 7,
    "__init__": 7,
    "__main__": 7,
}

#: Parts that may use each other although they share a layer (the bottom row, except the torch-only core).
BESIDE: set[frozenset[str]] = {frozenset(p) for p in [("data", "assets"), ("flops", "assets"), ("metrics", "data"),
                                                               ("data", "resources")]}

#: Third-party packages a part must never import.
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "pruning": {"transformers", "lightning", "nni", "wandb", "torchmetrics", "matplotlib", "PIL", "yaml"},
    "profiles": {"transformers", "lightning", "nni", "wandb"},
    "shapes": {"lightning", "nni", "wandb"},
    "models": {"lightning", "nni", "wandb"},
    "tradeoffs": {"nni", "lightning"},
    "analysis": {"nni"},
    "evaluation": {"nni"},
    "data": {"nni", "wandb"},
    "metrics": {"nni", "wandb", "transformers"},
    "flops": {"nni", "wandb", "lightning"},
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1] if len(parts) > 2 else parts  # adaptive_svdprune/__init__ keeps its name
    return ".".join(parts)


def _imports(path: Path, root: Path = PACKAGE_DIR) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            if module == PACKAGE:  # from adaptive_svdprune import models
                found += [(node.lineno, f"{PACKAGE}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
        elif isinstance(node, ast.Dict):  # lazy-export tables: {"name": "adaptive_svdprune.x.y"}
            found += [
                (node.lineno, v.value)
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value.startswith(PACKAGE + ".")
            ]
    return found


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _violations(path: Path, root: Path = PACKAGE_DIR) -> list[str]:
    source = _module_name(path, root)
    src_part = _part(source)
    src_layer = LAYERS[src_part]
    problems = []
    for line, target in _imports(path, root):
        where = f"{path.relative_to(root.parent)}:{line} imports {target}"
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            if target == PACKAGE:
                if src_part != "__init__":
                    problems.append(f"{where}: import the defining module, not the package root")
                continue
            dst_part = _part(target)
            if dst_part == src_part:
                continue
            dst_layer = LAYERS.get(dst_part)
            if dst_layer is None:
                problems.append(f"{where}: part {dst_part!r} has no layer in tests/test_layers.py")
            elif src_part == "pruning":
                problems.append(f"{where}: pruning/ is the torch-only core and imports nothing else of the package")
            elif dst_layer > src_layer:
                problems.append(f"{where}: {src_part} (layer {src_layer}) imports upward into {dst_part} "
                                f"(layer {dst_layer})")
            elif dst_layer == src_layer and frozenset((src_part, dst_part)) not in BESIDE:
                problems.append(f"{where}: {src_part} and {dst_part} share layer {src_layer} and must not "
                                "import each other")
        else:
            top = target.split(".")[0]
            if top in FORBIDDEN_THIRD_PARTY.get(src_part, set()):
                problems.append(f"{where}: {src_part} must not import {top}")
    return problems


def test_every_part_has_a_layer() -> None:
    parts = {_part(_module_name(p)) for p in _sources()}
    assert parts <= set(LAYERS), f"give these parts a layer: {sorted(parts - set(LAYERS))}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_imports_only_run_downward(path: Path) -> None:
    assert _violations(path) == []


def test_checker_catches_upward_imports(tmp_path: Path) -> None:
    """The checker is not vacuous: upward imports (also lazy ones) and forbidden libraries are reported."""
    root = tmp_path / PACKAGE
    (root / "pruning").mkdir(parents=True)
    (root / "tradeoffs").mkdir()
    bad = root / "pruning" / "bad.py"
    bad.write_text("def f():\n    from adaptive_svdprune.profiles import load_profile\n")
    lazy = root / "tradeoffs" / "lazy.py"
    lazy.write_text("import importlib\nimportlib.import_module('adaptive_svdprune.search.trial')\nimport nni\n"
                    "from ..evaluation import run_evaluation\n")
    assert any("torch-only core" in p for p in _violations(bad, root))
    found = _violations(lazy, root)
    assert any("imports upward into search" in p for p in found)
    assert any("imports upward into evaluation" in p for p in found)
    assert any("must not import nni" in p for p in found)
