"""The ``adaptive-svdprune`` console script.

Each sub-command lives in its own module under :mod:`adaptive_svdprune.commands` and exposes ``HELP`` (one
line), ``add_arguments(parser)`` and ``run(args) -> int``. Command modules import heavy libraries (torch,
transformers, nni) inside ``run`` so that ``--help`` stays fast. Adding a command never edits another one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

#: Sub-command name -> module under ``adaptive_svdprune.commands``.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "generate": "generate",
    "eval": "evaluate",
    "flops": "flops",
    "search": "search",
    "pareto": "pareto",
    "profile": "profile",
    "analyze": "analyze",
}


def _available_commands() -> dict[str, object]:
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"adaptive_svdprune.commands.{module_name}")
        except ModuleNotFoundError as err:  # a command whose module is not written yet is simply absent
            if err.name != f"adaptive_svdprune.commands.{module_name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per available command."""
    parser = argparse.ArgumentParser(
        prog="adaptive-svdprune",
        description="Training-free SVD-Prune vision-token pruning for LLaVA: generate, evaluate, count FLOPs, "
        "search thresholds per task, and export deployment profiles.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands().items():
        help_text = getattr(module, "HELP", "")
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)  # type: ignore[attr-defined]
        cmd.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
        # User errors: one clear line, no traceback.
        print(f"adaptive-svdprune {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
