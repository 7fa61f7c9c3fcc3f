"""Shared printing helpers for commands: aligned text tables and ``--json`` output."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_table", "print_json"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Format ``rows`` (dicts) as an aligned plain-text table.

    Example:
        >>> print(format_table([{"a": 1, "b": 0.5}, {"a": 22, "b": 1.25}]))
        a   b
        --  ----
        1   0.5
        22  1.25
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (the machine-readable output of every ``--json`` flag)."""
    print(json.dumps(obj, indent=2, default=str))
