"""The ``adaptive-svdprune`` console script.

Each sub-command lives in its own module under :mod:`adaptive_svdprune.commands` and exposes ``HELP`` (one
line), ``add_arguments(parser)`` and ``run(args) -> int``. Command modules import heavy libraries (torch,
transformers, nni) inside ``run`` so that ``--help`` stays fast. Adding a command never edits another one.

:func:`main` is the one error boundary: a user error (see :mod:`adaptive_svdprune.commands._errors`) prints
``adaptive-svdprune <command>: error: <one line>`` and exits 2; an unexpected error prints one line that points
to ``--debug`` and exits 1; Ctrl-C exits 130 and SIGTERM/SIGHUP 143/129 (after the command's own clean-up, e.g.
``search`` stopping its NNI manager). ``--debug`` (before or after the command) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import signal
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
    "shapes": "shapes",
    "analyze": "analyze",
    "compare": "compare",
}


def _available_commands() -> dict[str, object]:
    modules: dict[str, object] = {}
    for name, module_name in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"adaptive_svdprune.commands.{module_name}")
        except ModuleNotFoundError as err:  # a command whose module is not written yet is simply absent
            if err.name != f"adaptive_svdprune.commands.{module_name}":
                raise
    return modules


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("adaptive-svdprune")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per available command."""
    parser = argparse.ArgumentParser(
        prog="adaptive-svdprune",
        description="Training-free SVD-Prune vision-token pruning for LLaVA: generate, evaluate, count FLOPs, "
        "search thresholds per task, and export deployment profiles.",
    )
    parser.add_argument("--version", action="version", version=f"adaptive-svdprune {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands().items():
        help_text = getattr(module, "HELP", "")
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)  # type: ignore[attr-defined]
        # also accepted after the command; SUPPRESS keeps a --debug given before it
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error")
        cmd.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the process exit code."""
    from adaptive_svdprune.commands._errors import (
        EXIT_INTERNAL,
        EXIT_INTERRUPTED,
        EXIT_USER,
        internal_error_message,
        user_error_message,
    )

    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"adaptive-svdprune {args.command}: error:"
    try:
        if getattr(args, "json", False):  # stdout carries the JSON alone; all else printed goes to stderr
            from adaptive_svdprune.commands._output import json_output

            with json_output():
                return int(args._run(args) or 0)
        return int(args._run(args) or 0)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM/SIGHUP turned into one (``signum``) by a command
        if args.debug:
            raise
        signum = getattr(err, "signum", None)
        if signum is None:
            print(f"adaptive-svdprune {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"adaptive-svdprune {args.command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + int(signum)
    except SystemExit:
        raise
    except Exception as err:
        if args.debug:
            raise
        message = user_error_message(err)
        if message is not None:
            print(f"{prefix} {message}", file=sys.stderr)
            return EXIT_USER
        print(f"{prefix} {internal_error_message(err)}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
